"""Every 5 minutes: is each query of the streaming job alive, and is its lag behind the topic it reads bounded?"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from taxi_anomaly.orchestration.policies import default_args
from taxi_anomaly.streaming.topics import QUERY_TOPICS


@dag(
    dag_id="tap_stream_health",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # only the current state of the stream matters
    max_active_runs=1,
    tags=["taxi-anomaly", "streaming", "ops"],
    default_args=default_args(),
    params={
        "trip_type": Param("fhvhv", enum=["yellow", "green", "fhv", "fhvhv"], title="Trip type the job scores"),
        "granularity": Param("city", enum=["city", "borough", "zone"], title="Granularity the job scores"),
        "max_lag": Param(200_000, type="integer", minimum=0, title="Most events a query may be behind"),
        "max_silence_s": Param(120, type="integer", minimum=10, title="Longest time without progress (s)"),
    },
    doc_md="""
### Streaming job health
The job commits the offsets each query has processed to a consumer group of its own
(`tap-streaming-<trip type>-<granularity>-<query>`, see `taxi_anomaly.streaming.progress`). One task per query
compares them with the end offsets of the topic it reads (trips, or the window scores for the sink): it fails
(and alerts) when no progress was committed for `max_silence_s` or when the query is more than `max_lag`
events behind.
""",
)
def tap_stream_health() -> None:
    for query, topic in QUERY_TOPICS.items():

        @task(task_id=f"check_{query}", retries=0)
        def check(query_name: str = query, topic_name: str = topic, params: dict[str, Any] | None = None) -> str:
            from airflow.sdk import BaseHook

            from taxi_anomaly.streaming.progress import check_stream, progress_group, read_lag
            from taxi_anomaly.streaming.settings import KafkaSettings

            params = params or {}
            settings = KafkaSettings.from_connection(BaseHook.get_connection("tap_kafka_streaming"))
            group = progress_group(params["trip_type"], params["granularity"], query_name)
            return check_stream(read_lag(settings, group, topic_name), params["max_lag"], params["max_silence_s"])

        check()


tap_stream_health()
