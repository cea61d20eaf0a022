"""Parser models on full AWS-shaped events (tests/events/*.json) and on the thinner events moto sends."""

from __future__ import annotations

import json

import pytest
from aws_stack import BUCKET, load_event
from pydantic import ValidationError

from lambdas.dataset_trigger.events import (
    EventBridgeS3Event,
    S3Notification,
    S3ObjectRef,
    S3TestEvent,
    SnsEnvelope,
    created_objects,
    parse_body,
    parse_event,
)

SHOP_A = S3ObjectRef(
    bucket=BUCKET,
    key="datasets/shop-a/v3/manifest.json",
    etag="5d41402abc4b2a76b9719d911017c592",
    size=4711,
    version_id="Ls1.Gs8vQxGC0GAxh5v4rRC4cWuU6lpw",
)


def _body(fixture: str) -> str:
    body: str = load_event(fixture)["Records"][0]["body"]
    return body


def test_s3_notification_through_sqs() -> None:
    body = parse_body(_body("sqs_s3_notification.json"))
    assert isinstance(body, S3Notification)
    assert created_objects(body) == [SHOP_A]


def test_url_encoded_key_is_decoded() -> None:
    (ref,) = created_objects(parse_body(_body("sqs_s3_notification_encoded_key.json")))
    assert ref.key == "datasets/shop b/v=1/manifest.json"
    assert ref.folder == "datasets/shop b/v=1/"
    assert ref.is_dataset_manifest


def test_s3_test_event_yields_nothing() -> None:
    body = parse_body(_body("sqs_s3_test_event.json"))
    assert isinstance(body, S3TestEvent)
    assert created_objects(body) == []


def test_eventbridge_object_created_through_sqs_and_direct() -> None:
    via_sqs = parse_body(_body("sqs_eventbridge_object_created.json"))
    direct = parse_event(load_event("eventbridge_object_created.json"))
    assert isinstance(via_sqs, EventBridgeS3Event) and isinstance(direct, EventBridgeS3Event)
    assert created_objects(via_sqs) == created_objects(direct) == [SHOP_A]


def test_s3_notification_through_sns_then_sqs() -> None:
    body = parse_body(_body("sqs_sns_s3_notification.json"))
    assert isinstance(body, SnsEnvelope)
    assert created_objects(body) == [SHOP_A]


def test_moto_shaped_s3_notification() -> None:
    # As moto 5 sends it: no userIdentity/requestParameters/responseElements/ownerIdentity/sequencer.
    body = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-26T01:40:36.765Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "LeWGiIEIGPawEKFpGkz2YueRFhNasuC5goNE3d3BgX8bWdjFIK",
                    "bucket": {"name": "bkt1", "arn": "arn:aws:s3:::bkt1"},
                    "object": {
                        "key": "datasets%2Fmy+set%2Fv+1%2Fmanifest.json",
                        "size": 2,
                        "eTag": "99914b932bd37a50b983c5e7c90ae93b",
                    },
                },
            }
        ]
    }
    (ref,) = created_objects(parse_body(json.dumps(body)))
    assert ref == S3ObjectRef(
        bucket="bkt1", key="datasets/my set/v 1/manifest.json", etag="99914b932bd37a50b983c5e7c90ae93b", size=2
    )


def test_moto_shaped_eventbridge_event_spells_etag_differently() -> None:
    event = load_event("eventbridge_object_created.json")
    obj = event["detail"]["object"]
    obj["eTag"] = obj.pop("etag")
    (ref,) = created_objects(parse_event(event))
    assert ref.etag == SHOP_A.etag


def test_quoted_etags_are_compared_unquoted() -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail"]["object"]["etag"] = '"5d41402abc4b2a76b9719d911017c592"'
    assert created_objects(parse_event(event)) == [SHOP_A]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(eventName="ObjectRemoved:Delete"), 0),
        (lambda r: r.update(eventName="ObjectCreated:CompleteMultipartUpload"), 1),
        (lambda r: r.update(eventName="ObjectCreated:Copy"), 1),
    ],
)
def test_only_created_objects_count(mutate: object, expected: int) -> None:
    body = json.loads(_body("sqs_s3_notification.json"))
    mutate(body["Records"][0])  # type: ignore[operator]
    assert len(created_objects(parse_body(json.dumps(body)))) == expected


def test_eventbridge_other_detail_types_yield_nothing() -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail-type"] = "Object Deleted"
    assert created_objects(parse_event(event)) == []


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "{}",
        '{"Records": []}',
        '{"Records": [{"eventSource": "aws:sqs", "eventName": "x", "s3": {}}]}',
        '{"Service": "Amazon S3", "Event": "s3:Other", "Bucket": "b"}',
    ],
)
def test_other_bodies_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        parse_body(raw)


@pytest.mark.parametrize(
    ("key", "is_manifest"),
    [
        ("datasets/shop-a/v3/manifest.json", True),
        ("datasets/shop-a/manifest.json", True),
        ("datasets/manifest.json", False),  # would make every dataset one
        ("datasets/shop-a/v3/images/manifest.json.jpg", False),
        ("datasets/shop-a/v3/old-manifest.json", False),
        ("models/peoplenet/m-1/manifest.json", False),
    ],
)
def test_dataset_manifest_keys(key: str, is_manifest: bool) -> None:
    assert S3ObjectRef(bucket=BUCKET, key=key).is_dataset_manifest is is_manifest
