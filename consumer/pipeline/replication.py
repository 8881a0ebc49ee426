"""Replication into another DynamoDB table (any region or endpoint), versioned and idempotent;
README (Pipelines and their guarantees) lists the version attributes and the tombstones.

Each write is a PutItem on condition that the stored version (`_cdc_version`, the change time
in microseconds) is older; a failed condition means newer state is there (applied). At the
same version (a MILLISECOND tie) the stored item DynamoDB returns (ALL_OLD, no extra read)
decides (`newest.tie_history`), and a win is written on condition that the stored change is
still the one decided against, so a concurrent writer is never overwritten blindly. Only the
newest change per key of a batch is written, concurrently: with versioned conditions their
order does not matter.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from pydantic import Field

from consumer.aws import AwsEndpoints
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, error_code, is_retryable
from consumer.aws.fencing import check_fence, fence_requests
from consumer.pipeline.newest import (
    Newest,
    item_key,
    newest_per_key,
    sequence_token,
    stored_change,
    tie_history,
)
from consumer.pipeline.sink import Failures, SinkError
from consumer.pipeline.transform_hook import (
    DEFAULT_TIMEOUT_S,
    Transform,
    TransformFailed,
    TransformHook,
)
from consumer.records import ChangeEvent, DecodeError, EventName
from consumer.records.ordering import Transition, encode_states
from consumer.setting_rules import EndpointUrl, Region, Section, TableName, TransformReference

log = structlog.get_logger(__name__)

VERSION = "_cdc_version"
SEQUENCE = "_cdc_seq"
STATE = "_cdc_state"
PRIOR = "_cdc_prior"
DELETED = "_cdc_deleted"
EXPIRES_AT = "_cdc_expires_at"
RESERVED = frozenset({VERSION, SEQUENCE, STATE, PRIOR, DELETED, EXPIRES_AT})

_NEWER = f"attribute_not_exists({VERSION}) OR {VERSION} < :v"
# Replaces exactly the stored change that a tie was decided against.
_REPLACES = f"{VERSION} = :v AND {SEQUENCE} = :stored_seq"
TIE_ROUNDS = 3  # re-decisions when another writer changes the item under a tie
# Errors that say this record can never be written as it is (too large, invalid key, ...).
_RECORD_ERRORS = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


# botocore checks every parameter against the API model, ~8% of a PutItem's client CPU (issue
# 19). Without a transform the items are the decoder's checked client views plus the version
# attributes, so that check cannot fail (DynamoDB still validates: a ValidationException parks
# the record); a transform's output is user code, so with one botocore keeps checking.
_UNCHECKED_PARAMETERS = Config(parameter_validation=False)


def replica_client(endpoints: AwsEndpoints, *, transform: bool) -> Any:
    """The aiobotocore DynamoDB client (a context manager) the replication sink writes with;
    `transform`: a transform hook is configured."""
    kwargs = endpoints.client_kwargs("dynamodb")
    if not transform:
        kwargs["config"] = kwargs["config"].merge(_UNCHECKED_PARAMETERS)
    return endpoints.aio_session().create_client("dynamodb", **kwargs)


def load_transform(reference: str) -> Transform:
    """Resolves "package.module:function" to the callable; a clear error if it is not one."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"transform must look like 'package.module:function', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"transform module {module_name!r} cannot be imported: {error}") from error
    except (Exception, SystemExit) as error:  # its own code failed (SystemExit: not an exit)
        raise ValueError(
            f"transform module {module_name!r} failed while importing: "
            f"{type(error).__name__}: {error}"
        ) from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"transform {reference!r} is not a callable in {module_name}")
    if inspect.iscoroutinefunction(function):
        raise ValueError(f"transform {reference!r} is an async def: it must be a plain function")
    transform: Transform = function
    return transform


class ReplicationSection(Section):
    """The `pipelines.replication` section (README: Settings); `region` and `endpoint` default
    to the service's own (aws.region, aws.endpoint_dynamodb)."""

    table: TableName | None = None
    region: Region | None = None
    endpoint: EndpointUrl | None = None
    tombstone_ttl_s: int = Field(7 * 86_400, ge=60)
    include_attributes: list[str] | None = None
    exclude_attributes: list[str] = Field(default_factory=list)
    transform: TransformReference | None = None
    transform_timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=900)
    concurrency: int = Field(16, ge=1, le=256)


class ReplicationSink:
    """Applies changes to the replica table through an aiobotocore DynamoDB client."""

    name = "replication"
    buffered = False
    # Writes only the newest change per item key of a batch (see ShardPipeline._deliver).
    collapses_per_key = True

    def __init__(
        self,
        client: Any,
        settings: ReplicationSection,
        transform: Transform | TransformHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`transform` is the resolved hook (see `load_transform` for settings.transform); a
        plain function is bounded by settings.transform_timeout_s. Pass one TransformHook to
        every shard's sink so the hook is called one at a time across them."""
        if not settings.table:
            raise ValueError("the replication sink needs pipelines.replication.table")
        self._client = client
        fence_requests(client)
        self.settings = settings
        self._table = settings.table
        include = settings.include_attributes
        self._include = None if include is None else frozenset(include)
        self._exclude = frozenset(settings.exclude_attributes)
        self._clock = clock
        if transform is not None and not isinstance(transform, TransformHook):
            transform = TransformHook(transform, settings.transform_timeout_s)
        self._transform = transform
        self._limit = asyncio.Semaphore(settings.concurrency)
        self.conditional_skips = 0

    def _project(self, event: ChangeEvent, item: Mapping[str, Any]) -> dict[str, Any]:
        include = self._include
        exclude = self._exclude
        keys = event.keys.wire
        return {
            name: value
            for name, value in item.items()
            if name in keys or ((include is None or name in include) and name not in exclude)
        }

    async def _item_for(
        self, event: ChangeEvent, transition: Transition
    ) -> dict[str, Any] | None:
        version = {
            VERSION: {"N": str(event.version)},
            SEQUENCE: {"S": sequence_token(event.position.sequence_key)},
            STATE: {"S": transition.after},
        }
        if event.event_name is EventName.REMOVE:
            expires = int(self._clock()) + self.settings.tombstone_ttl_s
            return {
                **event.keys.client,
                **version,
                DELETED: {"BOOL": True},
                EXPIRES_AT: {"N": str(expires)},
            }
        if event.new_image is None:
            raise SinkError(
                f"{event.event_name} change has no NewImage: the stream view must include "
                "new images for replication",
                retryable=False,
            )
        item = self._project(event, event.new_image.client)
        if self._transform is not None:
            try:
                transformed = await self._transform(event, item)
            except TransformFailed as error:  # a user hook: its failure parks this record only
                raise SinkError(str(error), retryable=error.retryable) from error
            if transformed is None:
                return None
            item = transformed
        clash = RESERVED.intersection(item)
        if clash:
            raise SinkError(f"item uses reserved attributes {sorted(clash)}", retryable=False)
        return {**item, **version}

    async def _put(self, event: ChangeEvent, newest: Newest) -> None:
        try:
            item = await self._item_for(event, newest.transition)
        except DecodeError as error:
            raise SinkError(str(error), retryable=False) from error
        if item is None:
            return
        item[PRIOR] = {"S": encode_states(newest.follows_states)}
        condition, values = _NEWER, {":v": item[VERSION]}
        async with self._limit:
            for _ in range(TIE_ROUNDS):
                check_fence()  # the lease may have lapsed during the hook or the wait above
                stored_item = await self._conditional_put(item, condition, values)
                if stored_item is None:
                    return
                if stored_item.get(VERSION) != item[VERSION] or SEQUENCE not in stored_item:
                    self.conditional_skips += 1  # newer state is already there
                    return
                stored = stored_change(
                    stored_item.get(STATE, {}).get("S"),
                    stored_item.get(PRIOR, {}).get("S"),
                    stored_item[SEQUENCE].get("S"),
                )
                history = tie_history(
                    newest.transition,
                    newest.follows_states,
                    stored,
                    event.position.shard_id,
                    self.name,
                )
                if history is None:
                    self.conditional_skips += 1
                    return
                item[PRIOR] = {"S": encode_states(history)}
                condition = _REPLACES
                values = {":v": item[VERSION], ":stored_seq": stored_item[SEQUENCE]}
            raise SinkError("the replica item kept changing under a tie", retryable=True)

    async def _conditional_put(
        self, item: dict[str, Any], condition: str, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Writes `item` if `condition` holds; None if written, else the stored item."""
        try:
            await self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ParamValidationError as error:
            # Refused before sending (only a transform's items are checked, see replica_client):
            # the item does not fit DynamoDB's API model. This record's fault, not the batch's.
            raise SinkError(f"ParamValidationError: {error}", retryable=False) from error
        except ClientError as error:
            code = error_code(error)
            if code == "ConditionalCheckFailedException":
                stored: dict[str, Any] = error.response.get("Item") or {}
                return stored
            if code in _RECORD_ERRORS:
                raise SinkError(f"{code}: {error}", retryable=False) from error
            if code == "ResourceNotFoundException":
                # The replica table is missing: an outage, not a bad record. The pipeline
                # retries (and the shard waits) until it exists again.
                raise SinkError(f"replica table missing: {error}", retryable=True) from error
            if is_retryable(error):
                raise SinkError(f"{code}: {error}", retryable=True) from error
            raise

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        newest = list(newest_per_key(events, item_key, self.name).values())
        results = await asyncio.gather(
            *(self._put(events[chosen.index], chosen) for chosen in newest),
            return_exceptions=True,
        )
        failures: dict[int, SinkError] = {}
        for chosen, result in zip(newest, results, strict=True):
            if result is None:
                continue
            if isinstance(result, TRANSIENT_NETWORK_ERRORS):
                result = SinkError(f"network: {result!r}", retryable=True)
            elif not isinstance(result, SinkError):
                raise result  # whole-batch failure (table missing, credentials, a bug)
            # Retryable: the superseded changes are retried with their newest (any may win
            # then). Else only the change that failed is reported: the pipeline delivers the
            # ones it superseded again without it (collapses_per_key): the newest good one wins.
            members = (chosen.index, *chosen.superseded) if result.retryable else (chosen.index,)
            failures.update(dict.fromkeys(members, result))
        return failures

    async def aclose(self) -> None:
        return None


async def create_replica_table(
    client: Any,
    table: str,
    key_schema: list[dict[str, str]],
    attribute_definitions: list[dict[str, str]],
) -> None:
    """Creates the replica table (on-demand) with TTL on the tombstone expiry; idempotent."""
    try:
        await client.create_table(
            TableName=table,
            KeySchema=key_schema,
            AttributeDefinitions=attribute_definitions,
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error_code(error) != "ResourceInUseException":
            raise
    waiter = client.get_waiter("table_exists")
    await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    try:
        await client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT},
        )
    except ClientError as error:
        # Only "already enabled" (on this attribute) is fine. Anything else, such as TTL
        # active on another attribute, would leave tombstones forever or expire the wrong
        # items: the caller must hear of it.
        message = str(error.response.get("Error", {}).get("Message", ""))
        if error_code(error) != "ValidationException" or "already enabled" not in message:
            raise
