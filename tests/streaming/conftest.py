"""Fixtures of the real-time tests: Kafka settings per role, from the same connections Airflow gets."""

from __future__ import annotations

import json

import pytest

from local_platform.connections import connection_definitions
from taxi_anomaly.streaming.settings import KafkaSettings


def role_settings(platform, role: str) -> KafkaSettings:
    conn = connection_definitions(platform.cfg, platform.creds)[f"tap_kafka_{role}"]
    return KafkaSettings.from_connection_json(json.dumps(conn))


@pytest.fixture(scope="session")
def kafka_roles(platform) -> dict[str, KafkaSettings]:
    return {role: role_settings(platform, role) for role in ("replay", "streaming", "reader")}
