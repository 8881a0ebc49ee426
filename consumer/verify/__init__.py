"""`consumer verify`: prove that every sink equals the source table, and repair what differs.

Modules, one concern each:

- `keys`: an item's key as a reference (document id, typed key, display text), sampling.
- `compare`: is a sink's copy the source item (exact numbers, sets in any order).
- `batch_get`: items by key (BatchGetItem), strongly consistent, rate-limited.
- `sides`: what verify needs of a sink; `replica_side`, `search_local`, `search_opensearch`.
- `snapshot`: the verify scans on the shared table reader (`consumer.snapshot.table_reader`).
- `lag`: how far the consumer is behind (lease table checkpoints + the stream).
- `recheck`: a difference counts only if it outlives the consumer's lag.
- `repair`: the current source state through the same versioned sinks.
- `run`: the whole command; `model`, `report`: what it found, as a table or JSON; `metric`;
  `check`: the one in-process check the demo, chaos run and tests use.
"""
