"""The views readers query instead of a table that another run may be rewriting: never two tables of different runs.

The Spark job writes window_features, then anomaly_scores, each in one Iceberg commit per month; no commit spans
both tables. If the job dies between the two (kill -9, a lost driver), window_features holds the new run's month
and anomaly_scores the previous run's until the retry. Readers (the analyst, Superset) therefore read
window_features_current: the features of the run whose scores are committed for that (trip type, granularity,
month), and nothing for a month whose features are ahead of its scores. anomaly_scores is committed last, so it is
consistent by itself. The view runs with its owner's rights (SECURITY DEFINER): readers need no right on
window_features itself.
"""

from __future__ import annotations

from typing import Any

from taxi_anomaly import layout


def reader_views(namespace: str) -> dict[str, str]:
    """View name -> its CREATE OR REPLACE statement (Trino SQL; identifiers checked and quoted)."""
    features = layout.sql_table(namespace, layout.WINDOWS_TABLE)
    scores = layout.sql_table(namespace, layout.SCORES_TABLE)
    view = layout.sql_table(namespace, layout.WINDOWS_VIEW)
    return {
        layout.WINDOWS_VIEW: (
            f"CREATE OR REPLACE VIEW {view} "  # noqa: S608 - identifiers checked and quoted by layout.sql_table
            "COMMENT 'window_features of the runs whose anomaly_scores are committed (docs/serving.md)' "
            "SECURITY DEFINER AS "
            f"SELECT w.* FROM {features} w WHERE EXISTS (SELECT 1 FROM {scores} s "
            "WHERE s.trip_type = w.trip_type AND s.granularity = w.granularity AND s.month = w.month "
            "AND s.run_id = w.run_id)"
        )
    }


def ensure_reader_views(connection: Any, namespace: str) -> list[str]:
    """Create or replace the reader views of a namespace (as a Trino user that owns its tables)."""
    cursor = connection.cursor()
    for statement in reader_views(namespace).values():
        cursor.execute(statement)
        cursor.fetchall()
    return list(reader_views(namespace))
