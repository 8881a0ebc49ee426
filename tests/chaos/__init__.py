"""LOCAL ONLY: the chaos suite (`make chaos`, `python -m tests.chaos [--short] [--seed N]
[--mode efo|polling|both]`).

Like `consumer.local`, this package exists for the local stack only (moto server and
kinesis-mock on loopback); production never imports it. It runs several `consumer run`
processes under random `kill -9`, SIGTERM and SIGSTOP (past the failover time, then resumed),
a worker started with a replica table that does not exist, an event-loop stall inside a sink
write, a split and a merge, a replica-sink outage, throttling on the lease table, duplicates and
reordering from the destination bridge, a known number of poison records, and good and poison
changes of one key in one batch; then checks that nothing was lost or mis-applied, that no good
change was parked, that no worker wrote after its lease was superseded, and how long records
took to flow again after a kill. EFO and polling, one local stack each.

Modules: `hooks` (the replication transform that records deliveries and stalls on request),
`proxy` (the fault proxies and the replica-write log), `faults` (the schedule, worker
processes, resharding), `leasewatch` (lease-table changes, ownership and takeover checks),
`report` (the other checks), `run` (the orchestration).
"""
