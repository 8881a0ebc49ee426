"""`consumer verify`: prove that every sink equals the source table, and repair what differs.

`run` is the whole command (`check`: the same run in process, for the demo, the chaos run and
the tests); `sides` is what verify needs of a sink (`replica_side`, `search_local`,
`search_opensearch`); `recheck` counts a difference only once it outlives the consumer's `lag`;
`repair` sends the source's current state through the sinks; `model` and `report` are what it
found, as a table or JSON, and `metric` its CloudWatch line.
"""
