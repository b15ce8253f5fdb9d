"""The Kafka broker of the platform: SASL/SCRAM logins, per-role ACLs, topics as the contract says (real broker)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from taxi_anomaly.streaming.topics import ALERTS, DEAD_LETTERS, TOPICS, TRIPS

pytestmark = pytest.mark.platform


def _produce(settings, topic: str, timeout: float = 15.0) -> KafkaError | None:
    """Produce one message and wait for its delivery report; return its error (None if delivered)."""
    errors: list[KafkaError] = []
    reports: list[KafkaError | None] = []
    producer = Producer(
        {**settings.client_config(), "error_cb": errors.append, "message.timeout.ms": int(timeout * 1000)}
    )
    producer.produce(topic, key=b"k", value=b"{}", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(timeout + 5)
    assert reports, f"no delivery report for {topic} within {timeout} s (errors: {errors})"
    return reports[0]


def test_topics_exist_with_the_contract_partitions_and_retention(kafka_roles, platform):
    from local_platform.services.kafka import KAFKA_PRINCIPALS

    admin_settings = replace(
        kafka_roles["reader"], user=KAFKA_PRINCIPALS["admin"], password=platform.creds.kafka_admin_password
    )
    admin = AdminClient(admin_settings.client_config())
    listed = admin.list_topics(timeout=15).topics
    for topic in TOPICS:
        assert len(listed[topic.name].partitions) == topic.partitions
    configs = admin.describe_configs([ConfigResource("topic", TRIPS.name)])
    entries = next(iter(configs.values())).result()
    assert entries["retention.ms"].value == str(TRIPS.retention_ms)
    assert entries["retention.bytes"].value == str(TRIPS.retention_bytes)


def test_each_role_writes_only_its_own_topics(kafka_roles):
    assert _produce(kafka_roles["replay"], TRIPS.name) is None
    denied = _produce(kafka_roles["replay"], ALERTS.name)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _produce(kafka_roles["streaming"], DEAD_LETTERS.name) is None
    denied = _produce(kafka_roles["reader"], TRIPS.name)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_topics_are_never_auto_created(kafka_roles):
    error = _produce(kafka_roles["replay"], f"tap.not-a-topic-{uuid.uuid4().hex[:6]}", timeout=5)
    assert error is not None  # unknown topic (or not authorised): never created on the fly
    admin = AdminClient(kafka_roles["reader"].client_config())
    assert not [t for t in admin.list_topics(timeout=10).topics if t.startswith("tap.not-a-topic")]


def test_the_replay_role_cannot_read_trips(kafka_roles):
    consumer = Consumer(
        {**kafka_roles["replay"].client_config(), "group.id": "tap-reader-x", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([TRIPS.name])
    try:
        message = consumer.poll(10)
        assert message is not None and message.error() is not None
        assert message.error().code() in (
            KafkaError.GROUP_AUTHORIZATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
        )
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["wrong password", "no SASL"])
def test_unauthenticated_clients_are_refused(kafka_roles, how):
    settings = kafka_roles["reader"]
    config = settings.client_config()
    if how == "wrong password":
        config["sasl.password"] = settings.password + "x"
    else:
        config = {"bootstrap.servers": settings.bootstrap, "security.protocol": "PLAINTEXT"}
    errors: list[KafkaError] = []
    producer = Producer({**config, "error_cb": errors.append, "log_level": 0})
    with pytest.raises(KafkaException):
        producer.list_topics(timeout=6)
    producer.poll(1)  # serves the error callbacks
    if how == "wrong password":
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    else:  # the broker drops a connection that does not start with a SASL handshake
        assert errors, "a plaintext client must not get a metadata answer"
