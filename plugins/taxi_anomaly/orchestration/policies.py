"""Retries, delays and timeouts per kind of task, explicit and in one place.

| kind | retries | first delay | backoff | timeout | why |
| --- | --- | --- | --- | --- | --- |
| plan | 1 | 30 s | - | 5 min | reads the object store only; a wrong parameter fails at once with a readable message |
| download | 3 | 5 min | x2 up to 30 min | 60 min | the CDN or network may be down a while (resets: ingest_month) |
| check | 0 | - | - | 10 min | integrity and validation outcomes are deterministic: a retry would give the same answer |
| spark | 1 | 10 min | - | 3 h | one resubmission covers a lost executor or pod; the job is idempotent per month |
| catalog | 3 | 1 min | x2 up to 10 min | 10 min | Hive Metastore and Trino restarts, catalog caches |
| serving | 2 | 2 min | - | 15 min | Superset restarts; the refresh is idempotent |
| record | 3 | 30 s | - | 5 min | small object-store writes |
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

POLICIES: dict[str, dict[str, Any]] = {
    "plan": {"retries": 1, "retry_delay": timedelta(seconds=30), "execution_timeout": timedelta(minutes=5)},
    "download": {
        "retries": 3,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=60),
    },
    "check": {"retries": 0, "retry_delay": timedelta(seconds=30), "execution_timeout": timedelta(minutes=10)},
    "spark": {"retries": 1, "retry_delay": timedelta(minutes=10), "execution_timeout": timedelta(hours=3)},
    "catalog": {
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=10),
    },
    "serving": {"retries": 2, "retry_delay": timedelta(minutes=2), "execution_timeout": timedelta(minutes=15)},
    "record": {"retries": 3, "retry_delay": timedelta(seconds=30), "execution_timeout": timedelta(minutes=5)},
}


def policy(kind: str) -> dict[str, Any]:
    """The task arguments of one kind (a copy: callers may add to it)."""
    try:
        return dict(POLICIES[kind])
    except KeyError:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(POLICIES)}") from None


def default_args(owner: str = "data-platform") -> dict[str, Any]:
    """DAG-level defaults: owner, the alert callback, and the 'plan' policy for any task that sets none."""
    from taxi_anomaly.orchestration.alerts import on_failure_alert

    return {"owner": owner, "on_failure_callback": on_failure_alert, **policy("plan")}
