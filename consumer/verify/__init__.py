"""`consumer verify`: prove that every sink equals the source table, and repair what differs.

Modules, one concern each:

- `keys`: an item's key as a reference (document id, typed key, display text), sampling.
- `compare`: is a sink's copy the source item (exact numbers, sets in any order).
- `source`: the source table by key (BatchGetItem), strongly consistent, rate-limited.
- `replica_side`, `search_side`: each sink by key, and its live keys (for extras).
- `snapshot`: the verify scans on the shared table reader (`consumer.snapshot.table_reader`).
- `lag`: how far the consumer is behind (lease table checkpoints + the stream).
- `recheck`: a difference counts only if it outlives the consumer's lag.
- `repair`: the current source state through the same versioned sinks.
- `run`: the whole command; `report`: counts and first keys, as a table or JSON; `metric`.
"""
