"""Lambda entry point: SQS batches of S3 manifest notifications (or a direct EventBridge event).

Each SQS record is parsed (`events`), every created `datasets/**/manifest.json` of the data bucket
goes through `service.handle_manifest` exactly once per (bucket, key, ETag) thanks to the
idempotency table, and failed records are reported back (partial batch response) so only they are
delivered again. Clients and adapters are built on the first invocation and reused while the
execution environment lives.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from lambdas.dataset_trigger.environment import TriggerConfig
from lambdas.dataset_trigger.events import S3ObjectRef, created_objects, parse_body, parse_event
from lambdas.dataset_trigger.service import Outcome, handle_manifest, skip_reason

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "peoplenet-retrain")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PeopleNetRetrain"), service=SERVICE)
tracer = Tracer(service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)

_METRIC_FOR = {
    Outcome.QUEUED: "DatasetsQueued",
    Outcome.REJECTED: "DatasetsRejected",
    Outcome.ALREADY_QUEUED: "DatasetsAlreadyQueued",
}


@dataclass(frozen=True)
class Runtime:
    config: TriggerConfig
    idempotency: IdempotencyConfig
    take_in: Callable[..., dict[str, Any]]  # take_in(obj=S3ObjectRef) -> TriggerResult.to_dict(), idempotent


def build_runtime(config: TriggerConfig) -> Runtime:
    from gpu_worker.adapters._aws import make_client

    adapters = config.adapters()
    s3 = config.s3_client()
    persistence = DynamoDBPersistenceLayer(
        table_name=config.idempotency_table,
        boto3_client=make_client("dynamodb", endpoint_url=config.endpoint_url, region=config.region),
    )
    idempotency = IdempotencyConfig(
        event_key_jmespath="[bucket, key, etag]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=config.idempotency_ttl_s,
    )

    def take_in(obj: S3ObjectRef) -> dict[str, Any]:
        # Runs once per (bucket, key, ETag): metrics here count datasets, not deliveries.
        result = handle_manifest(obj, adapters, s3, config.bucket)
        if (metric := _METRIC_FOR.get(result.outcome)) is not None:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info(result.message, extra={"outcome": str(result.outcome), "job_id": result.job_id, "key": obj.key})
        return result.to_dict()

    wrapped = idempotent_function(
        take_in, data_keyword_argument="obj", persistence_store=persistence, config=idempotency
    )
    return Runtime(config, idempotency, wrapped)


@functools.cache
def runtime() -> Runtime:
    """Built once per execution environment, from its environment variables."""
    return build_runtime(TriggerConfig.from_env())


def take_in_objects(objects: list[S3ObjectRef], rt: Runtime) -> list[dict[str, Any]]:
    results = []
    for obj in objects:
        if (reason := skip_reason(obj, rt.config.bucket)) is not None:
            logger.info("skipped: %s", reason)
            continue
        results.append(rt.take_in(obj=obj))
    return results


@tracer.capture_method
def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    """One SQS message; raising marks it failed (delivered again, dead-lettered after maxReceiveCount)."""
    objects = created_objects(parse_body(record.body))
    if not objects:
        logger.info("no created object in message %s (e.g. s3:TestEvent): acknowledged", record.message_id)
    return take_in_objects(objects, runtime())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    rt.idempotency.register_lambda_context(context)
    if event.get("source") == "aws.s3" and "detail" in event:
        # Invoked by an EventBridge rule directly: one event, failures raise (EventBridge retries).
        metrics.add_metric(name="TriggerMessages", unit=MetricUnit.Count, value=1)
        return {"results": take_in_objects(created_objects(parse_event(event)), rt)}
    metrics.add_metric(name="TriggerMessages", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
