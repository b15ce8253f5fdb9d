"""The most anomalous windows, read from Trino: `python -m taxi_anomaly.serving.top_anomalies --help`."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from taxi_anomaly.serving.trino_client import TrinoSettings

if TYPE_CHECKING:
    from trino.dbapi import Connection as TrinoConnection

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Anomaly:
    bucket_start: datetime
    trip_type: str
    granularity: str
    key: str
    anomaly_score: float
    trips: int | None
    explanation: str | None


def top_anomalies(
    conn: TrinoConnection,
    limit: int = 10,
    schema: str = "taxi",
    trip_type: str | None = None,
    granularity: str | None = None,
    month: str | None = None,
) -> list[Anomaly]:
    """Flagged windows of `<schema>.anomaly_scores`, highest score first, optionally filtered."""
    if not _IDENTIFIER.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    conditions, params = ["is_anomaly"], []
    for column, value in (("trip_type", trip_type), ("granularity", granularity), ("month", month)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    # The schema matched _IDENTIFIER and the values are query parameters: nothing user-given is pasted in.
    sql = (
        "SELECT bucket_start, trip_type, granularity, key, anomaly_score, trips, explanation "  # noqa: S608
        f"FROM {schema}.anomaly_scores WHERE {' AND '.join(conditions)} "
        f"ORDER BY anomaly_score DESC, bucket_start, trip_type, granularity, key LIMIT {int(limit)}"
    )
    cursor = conn.cursor()
    cursor.execute(sql, params or None)
    return [Anomaly(*row) for row in cursor.fetchall()]


def format_table(anomalies: list[Anomaly]) -> str:
    if not anomalies:
        return "no anomalous windows found"
    header = ("#", "window start", "trip type", "granularity", "key", "score", "trips", "explanation")
    rows = [
        (
            str(rank),
            a.bucket_start.strftime("%Y-%m-%d %H:%M"),
            a.trip_type,
            a.granularity,
            a.key,
            f"{a.anomaly_score:.3f}",
            "" if a.trips is None else str(a.trips),
            a.explanation or "",
        )
        for rank, a in enumerate(anomalies, start=1)
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in (header, *rows)
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxi_anomaly.serving.top_anomalies", description=__doc__)
    parser.add_argument("-n", "--limit", type=int, default=10, help="how many windows (default 10)")
    parser.add_argument("--trip-type", help="yellow, green, fhv or fhvhv (default: all)")
    parser.add_argument("--granularity", help="city, borough or zone (default: all)")
    parser.add_argument("--month", help="YYYY-MM (default: all)")
    parser.add_argument("--schema", default="taxi", help="Iceberg namespace of the job's tables (default taxi)")
    parser.add_argument(
        "--conn-id",
        default="tap_trino_analyst",
        help="Airflow connection to Trino, e.g. from AIRFLOW_CONN_* variables (default tap_trino_analyst)",
    )
    args = parser.parse_args(argv)

    import trino
    from airflow.sdk import BaseHook

    settings = TrinoSettings.from_connection(BaseHook.get_connection(args.conn_id))
    try:
        anomalies = top_anomalies(
            settings.connect(), args.limit, args.schema, args.trip_type, args.granularity, args.month
        )
    except trino.exceptions.TrinoUserError as exc:
        if exc.error_name not in ("SCHEMA_NOT_FOUND", "TABLE_NOT_FOUND"):
            raise
        table = f"{settings.catalog}.{args.schema}.anomaly_scores"
        print(f"{table} does not exist yet: run the pipeline first", file=sys.stderr)
        return 2
    print(
        f"Top {args.limit} anomalous windows in {settings.catalog}.{args.schema} ({settings.url}, as {settings.user}):"
    )
    print(format_table(anomalies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
