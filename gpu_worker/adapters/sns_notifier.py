"""SNS notifier: the event JSON as the message, its attributes as String message attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.adapters._aws import make_client, unavailable
from gpu_worker.ports.notifier import Notifier
from peoplenet_contracts.events import Event

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class SnsNotifier(Notifier):
    """Publishes the event JSON to an SNS topic, with `event.attributes()` as String message attributes."""

    def __init__(
        self,
        topic_arn: str,
        client: SNSClient | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.topic_arn = topic_arn
        self._client: SNSClient = client or make_client("sns", endpoint_url=endpoint_url, region=region)

    def publish(self, event: Event) -> None:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            name: {"DataType": "String", "StringValue": value} for name, value in event.attributes().items()
        }
        try:
            self._client.publish(TopicArn=self.topic_arn, Message=event.model_dump_json(), MessageAttributes=attributes)
        except (BotoCoreError, ClientError) as exc:
            raise unavailable(f"SNS topic {self.topic_arn}", exc) from exc
