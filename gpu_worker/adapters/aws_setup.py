"""Create the AWS resources the adapters use, for tests and local setups (the SAM template does it in AWS)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


def create_bucket(client: S3Client, bucket: str, region: str = "us-east-1") -> None:
    if region == "us-east-1":
        client.create_bucket(Bucket=bucket)
    else:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]


def create_queue_pair(
    client: SQSClient, name: str, *, max_receives: int = 3, visibility_timeout_s: int = 900
) -> tuple[str, str]:
    """A standard queue and its DLQ, redriving after max_receives receives. Returns (queue_url, dlq_url)."""
    dlq_url = client.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})
    queue_url = client.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility_timeout_s), "RedrivePolicy": redrive},
    )["QueueUrl"]
    return queue_url, dlq_url


def create_jobs_table(client: DynamoDBClient, table_name: str) -> None:
    """On-demand table keyed by `job_id` (S), as the SAM template declares it."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def create_topic(client: SNSClient, name: str) -> str:
    return client.create_topic(Name=name)["TopicArn"]


def subscribe_queue(
    sns: SNSClient,
    sqs: SQSClient,
    topic_arn: str,
    queue_url: str,
    *,
    filter_policy: dict[str, list[str]] | None = None,
    raw_delivery: bool = False,
) -> str:
    """Subscribe an SQS queue to the topic (optionally filtered on message attributes); returns the subscription.

    Also sets the queue policy that lets this topic (and only it) deliver to the queue.
    """
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    if raw_delivery:
        attributes["RawMessageDelivery"] = "true"
    return sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes)[
        "SubscriptionArn"
    ]
