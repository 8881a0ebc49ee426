"""Keeps the start-up heap out of the cyclic garbage collector's full collections.

A started worker holds ~200,000 container objects that live as long as the process: botocore's
service models (tens of thousands of OrderedDicts), modules, classes, clients. CPython's full
(generation 2) collection walks every one of them, and the decode path allocates enough to run
one every few seconds: each stalled the event loop, and every shard's delivery with it, for
100 ms (500 ms on a loaded machine), which was the whole p99 of the consumer's added latency.
`gc.freeze()` moves them to the permanent generation that collections skip (the CPython
documentation's advice for long-lived start-up objects), after one full collection so that no
start-up garbage is frozen with them. That collection blocks the loop too (1.6 s under load),
so the worker freezes before its first lease.
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
