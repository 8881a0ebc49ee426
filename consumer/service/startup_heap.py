"""Keeps the start-up heap (~200,000 objects, mostly botocore's service models) out of full
collections, which stalled the event loop 100-500 ms each (README, Performance). The one
collection before `gc.freeze()` blocks the loop too (1.6 s loaded): the worker freezes before
its first lease.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_heap() -> bool:
    """Collects once and freezes every object alive now; later calls do nothing. Returns
    whether this call froze. Objects allocated afterwards are collected as usual."""
    global _frozen
    if _frozen:
        return False
    _frozen = True
    gc.collect()
    gc.freeze()
    return True
