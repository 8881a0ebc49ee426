"""LOCAL ONLY: the chaos suite (`make chaos`, `python -m consumer.chaos [--short] [--seed N]`).

Like `consumer.local`, this package exists for the local stack only (moto server and
kinesis-mock on loopback); production never imports it. It runs several `consumer run`
processes under random `kill -9` and SIGTERM, a split and a merge, a replica-sink outage,
throttling on the lease table, duplicates and reordering from the destination bridge and a
known number of poison records, then checks that nothing was lost or mis-applied.

Modules: `hooks` (the replication transform that records deliveries), `proxy` (the fault
proxies), `faults` (the schedule, worker processes, resharding), `report` (the checks),
`run` (the orchestration).
"""
