"""The errors of the cost model: each one is a single line a user can act on."""

from __future__ import annotations


class CostError(ValueError):
    """Base of every error the cost model raises for bad input."""


class CostInputError(CostError):
    """A scenario parameter is out of range.

    `parameter` is the parameter's name as the model spells it (`writes_per_day`); the CLI
    spells it as its option (`--writes-per-day`).
    """

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter} {problem}")
        self.parameter = parameter
        self.problem = problem

    @property
    def option(self) -> str:
        """The parameter as a command-line option."""
        return "--" + self.parameter.replace("_", "-")


class PriceFileError(CostError):
    """A price file cannot be read, is malformed, or lacks a key (named in the message)."""


class UnknownRegionError(CostError):
    """No packaged price file for the region; the message lists the known regions."""
