"""Rows shaped like one run of the anomaly job, written into iceberg.taxi.* through Trino, and removed again.

Two weeks of February 2001 (no real TLC month is that old) for yellow and green trips, at city and borough
level, with three anomalous episodes that carry explanations and were alerted on by the stream. Every row has
the run id of one test session, so cleaning up deletes exactly what the tests wrote, whatever else the tables
hold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from taxi_anomaly.serving.trino_client import TrinoSettings

SCHEMA = "iceberg.taxi"
MONTH = "2001-02"
FIRST_WINDOW = datetime(2001, 2, 5)  # a Monday
LAST_WINDOW = datetime(2001, 2, 18, 23, 30)

# trip type -> trips per half-hour at the daily peak of the whole city
TRIP_TYPES = [("yellow", 4000.0), ("green", 300.0)]
# granularity, key, share of the city's trips
KEYS = [
    ("city", "NYC", 1.0),
    ("borough", "Manhattan", 0.55),
    ("borough", "Brooklyn", 0.18),
    ("borough", "Queens", 0.17),
    ("borough", "Bronx", 0.07),
    ("borough", "Staten Island", 0.03),
]
# key, first window, end (exclusive), factor on the usual trips, explanation, top features
EPISODES = [
    (
        "NYC",
        datetime(2001, 2, 6, 17),
        datetime(2001, 2, 6, 19),
        0.35,
        "trips far below a usual Tuesday evening",
        ["z_log_rate", "d_prev_week"],
    ),
    (
        "Manhattan",
        datetime(2001, 2, 6, 17),
        datetime(2001, 2, 6, 19),
        0.30,
        "Manhattan trips far below a usual Tuesday evening",
        ["z_log_rate", "d_prev_day"],
    ),
    (
        "Queens",
        datetime(2001, 2, 10, 22, 30),
        datetime(2001, 2, 11),
        2.5,
        "surge of Queens trips late on a Saturday",
        ["z_log_rate", "z_fare_mean"],
    ),
]
# Two more days of yellow city windows a fortnight later (another month): the dashboard's time series must leave
# the weeks between them empty, not draw a line across.
LATER_MONTH = "2001-03"
LATER_WINDOWS = (datetime(2001, 3, 5), datetime(2001, 3, 6, 23, 30))
ANOMALOUS_WINDOWS = len(TRIP_TYPES) * sum(int((end - start).total_seconds() // 1800) for _, start, end, *_ in EPISODES)


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _values(rows: list[tuple]) -> str:
    return ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


GRID = f"""
    WITH types(trip_type, peak) AS (VALUES {_values(TRIP_TYPES)}),
    keys(granularity, key, share) AS (VALUES {_values(KEYS)}),
    episodes(key, start_at, end_at, factor, explanation, features) AS (VALUES {_values(EPISODES)}),
    windows AS (
        SELECT bucket_start
        FROM UNNEST(sequence({_literal(FIRST_WINDOW)}, {_literal(LAST_WINDOW)}, INTERVAL '30' MINUTE))
             AS w(bucket_start)
    ),
    grid AS (
        SELECT t.trip_type, k.granularity, k.key, w.bucket_start,
               t.peak * k.share * (0.55 + 0.45 * sin(2 * pi() * (hour(w.bucket_start) - 9) / 24.0)) AS usual,
               e.factor, e.explanation, e.features
        FROM types t CROSS JOIN keys k CROSS JOIN windows w
        LEFT JOIN episodes e ON e.key = k.key AND w.bucket_start >= e.start_at AND w.bucket_start < e.end_at
    )"""
"""Every (trip type, key, window) with its usual trips and, inside an episode, the factor and explanation."""


@dataclass
class PipelineRun:
    """One synthetic run of the job: `write()` inserts its rows as the Trino admin, `remove()` deletes them."""

    admin: TrinoSettings
    run_id: str = field(default_factory=lambda: f"serving-test-{uuid.uuid4().hex[:12]}")
    # trips_normalised has no run id: this run's trip carries a pickup zone no real trip has
    trip_marker: int = field(default_factory=lambda: 1_000_000 + uuid.uuid4().int % 9_000_000)
    written: dict[str, int] = field(default_factory=dict)

    def _execute(self, sql: str) -> list[list]:
        cursor = self.admin.connect().cursor()
        cursor.execute(sql)
        return cursor.fetchall()

    def write(self) -> dict[str, int]:
        """Insert the run's rows; returns (and keeps in `written`) the row count per table."""
        scores = f"""
            INSERT INTO {SCHEMA}.anomaly_scores
            {GRID}
            SELECT trip_type, granularity, '{MONTH}', key, bucket_start,
                   CAST(round(usual * coalesce(factor, 1.0)) AS bigint),
                   12.5 + hour(bucket_start) % 5, 2.8, CAST(NULL AS double),
                   CASE WHEN factor IS NULL THEN 0.40 + 0.05 * sin(hour(bucket_start)) ELSE 0.80 END,
                   factor IS NOT NULL,
                   coalesce(features, CAST(ARRAY[] AS array(varchar))),
                   explanation,
                   'serving-test-model', '{self.run_id}', current_timestamp
            FROM grid"""
        later = f"""
            INSERT INTO {SCHEMA}.anomaly_scores
            SELECT 'yellow', 'city', '{LATER_MONTH}', 'NYC', w.bucket_start, CAST(3000 AS bigint), 12.5, 2.8,
                   CAST(NULL AS double), 0.41, false, CAST(ARRAY[] AS array(varchar)), CAST(NULL AS varchar),
                   'serving-test-model', '{self.run_id}', current_timestamp
            FROM UNNEST(sequence({_literal(LATER_WINDOWS[0])}, {_literal(LATER_WINDOWS[1])}, INTERVAL '30' MINUTE))
                 AS w(bucket_start)"""
        features = f"""
            INSERT INTO {SCHEMA}.window_features
                (trip_type, granularity, month, key, bucket_start, exposure, trips, rate, hour, weekday, run_id)
            {GRID}
            SELECT trip_type, granularity, '{MONTH}', key, bucket_start, 1,
                   CAST(round(usual * coalesce(factor, 1.0)) AS bigint), usual * coalesce(factor, 1.0),
                   CAST(hour(bucket_start) AS integer), CAST(day_of_week(bucket_start) - 1 AS integer), '{self.run_id}'
            FROM grid WHERE granularity = 'city'"""
        trips = f"""
            INSERT INTO {SCHEMA}.trips_normalised (trip_type, month, pickup_at, dropoff_at, pu_location_id,
                                                    do_location_id, trip_distance, fare_amount, total_amount)
            VALUES ('yellow', '{MONTH}', TIMESTAMP '2001-02-05 08:00:00', TIMESTAMP '2001-02-05 08:20:00',
                    {self.trip_marker}, 236, 2.1, 14.2, 19.5)"""
        # What the stream alerts on for the episodes; alert ids start with the run id (the table has no run_id).
        alerts = f"""
            INSERT INTO {SCHEMA}.stream_alerts
            {GRID}
            SELECT '{self.run_id}:' || trip_type || ':' || key || ':' || CAST(bucket_start AS varchar),
                   trip_type, granularity, '{MONTH}', key, bucket_start,
                   CAST(round(usual * factor) AS bigint), 0.80, 0.60, features, explanation,
                   'serving-test-model', 1, current_timestamp
            FROM grid WHERE factor IS NOT NULL"""
        # What a scoring run records of the model version it used (the model-versions chart reads it).
        evaluations = f"""
            INSERT INTO {SCHEMA}.model_evaluations (model_version, family, detector, trip_type, granularity, month,
                                                     namespace, run_id, evaluated_at, windows, anomalies,
                                                     flagged_share, expected_share, calibration_error, labelled,
                                                     bucket_f1, episodes, episodes_found)
            VALUES ('serving-test-model', 'isolation_forest', 'isolation_forest', 'yellow', 'city', '{MONTH}', 'taxi',
                    '{self.run_id}', current_timestamp, 672, 20, 0.0298, 0.03, 0.0002, true, 0.97, 2, 2)"""
        written = (
            ("anomaly_scores", scores),
            ("model_evaluations", evaluations),
            ("anomaly_scores_later", later),
            ("window_features", features),
            ("trips_normalised", trips),
            ("stream_alerts", alerts),
        )
        for table, sql in written:
            self.written[table] = self._execute(sql)[0][0]
        self.written["anomaly_scores"] += self.written.pop("anomaly_scores_later")  # every scored row of the run
        return self.written

    def add_alert(self) -> str:
        """One more zone alert of this run, alerted now (what the stream writes as a window closes); its key."""
        key = f"zone-{uuid.uuid4().hex[:8]}"
        self._execute(f"""
            INSERT INTO {SCHEMA}.stream_alerts
            VALUES ('{self.run_id}:{key}', 'yellow', 'zone', '{MONTH}', '{key}', TIMESTAMP '2001-02-18 23:30:00',
                    420, 0.91, 0.60, ARRAY['z_log_rate'], 'a new alert while the dashboard is open',
                    'serving-test-model', 2, current_timestamp)""")
        self.written["stream_alerts"] += 1
        return key

    def remove(self) -> None:
        self._execute(f"DELETE FROM {SCHEMA}.anomaly_scores WHERE run_id = '{self.run_id}'")
        self._execute(f"DELETE FROM {SCHEMA}.window_features WHERE run_id = '{self.run_id}'")
        self._execute(f"DELETE FROM {SCHEMA}.trips_normalised WHERE pu_location_id = {self.trip_marker}")
        self._execute(f"DELETE FROM {SCHEMA}.stream_alerts WHERE starts_with(alert_id, '{self.run_id}:')")
        self._execute(f"DELETE FROM {SCHEMA}.model_evaluations WHERE run_id = '{self.run_id}'")
