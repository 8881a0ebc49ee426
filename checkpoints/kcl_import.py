"""Adopting a KCL application's checkpoints: `consumer leases import-kcl --table NAME`.

The KCL table must belong to a stopped application (the CLI checks that no lease counter moves
for a few seconds: KCL renews every lease every ~3.3 s). Imported leases keep their
checkpoints, pending checkpoints, parents and children, and start unowned, so our workers take
them as usual and resume exactly where KCL stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from checkpoints.admin import scan_leases
from checkpoints.model import Checkpoint, Lease, Position
from checkpoints.table import LeaseTable


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    skipped_other_streams: list[str] = field(default_factory=list)


class KclImportError(ValueError):
    """A KCL table that cannot be imported as asked (the message says why, in one line)."""


def kcl_leases_to_import(
    kcl: Sequence[Lease], stream: str | None = None, at_timestamp: Checkpoint | None = None
) -> tuple[list[Lease], list[str]]:
    """Our leases for a KCL application's leases: same checkpoints, parents and children,
    unowned, counter 0. KCL does not store the AT_TIMESTAMP time; it must be given."""
    leases: list[Lease] = []
    other_streams: list[str] = []
    for lease in kcl:
        parts = lease.key.split(":")  # multi-stream: "account:stream:creationEpoch:shardId"
        if stream is not None and len(parts) == 4 and parts[1] != stream:
            other_streams.append(lease.key)
            continue
        checkpoint = lease.checkpoint
        if checkpoint.position is Position.AT_TIMESTAMP and checkpoint.timestamp_ms is None:
            if at_timestamp is None:
                raise KclImportError(
                    f"lease {lease.key} is at AT_TIMESTAMP, whose time KCL does not store: "
                    "pass --at-timestamp TIME"
                )
            checkpoint = at_timestamp
        leases.append(
            Lease(
                key=lease.shard_id,
                shard_id=lease.shard_id,
                checkpoint=checkpoint,
                pending_checkpoint=lease.pending_checkpoint,
                parent_shard_ids=lease.parent_shard_ids,
                child_shard_ids=lease.child_shard_ids,
            )
        )
    keys = [lease.key for lease in leases]
    if len(set(keys)) != len(keys):
        raise KclImportError("the KCL table holds several streams: pass --stream NAME")
    return leases, other_streams


async def import_kcl(
    source: LeaseTable,
    target: LeaseTable,
    *,
    stream: str | None = None,
    at_timestamp: Checkpoint | None = None,
    overwrite: bool = False,
) -> ImportReport:
    snapshot = await scan_leases(source)
    leases, other_streams = kcl_leases_to_import(snapshot.leases, stream, at_timestamp)
    report = ImportReport(skipped_other_streams=other_streams)
    for lease in leases:
        if await target.create_lease(lease, overwrite=overwrite):
            report.imported.append(lease.key)
        else:
            report.skipped_existing.append(lease.key)
    return report
