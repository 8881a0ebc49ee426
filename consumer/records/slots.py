"""Instances of slotted classes built without their __init__, for the decoders: a frozen
dataclass sets each field through object.__setattr__, and C (`_speedups.build`) does it for a
fifth of that. The result is the object the constructor makes from the same values."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

try:
    from consumer.records import _speedups
except ImportError:  # not compiled: the slots' own setters
    _speedups = None  # type: ignore[assignment]  # a module or None; mypy sees only the module

_T = TypeVar("_T")


def slot_builder(cls: type[_T], names: tuple[str, ...]) -> Callable[..., _T]:
    """A function of one value per name (slots of `cls`, in that order; every slot of it) that
    returns the instance with those slot values, None for the names past the values given."""
    if _speedups is not None:
        return partial(_speedups.build, _speedups.layout(cls, names))
    setters = [cls.__dict__[name].__set__ for name in names]
    new = object.__new__

    def build(*values: Any) -> _T:
        instance: _T = new(cls)
        if len(values) > len(setters):
            raise TypeError("build(*values): at most one value per slot")
        for index, setter in enumerate(setters):
            setter(instance, values[index] if index < len(values) else None)
        return instance

    return build
