"""Compaction of the streamed Iceberg tables through Trino: rewrite small data files, expire old snapshots,
remove orphan files, and count the data files before and after (the number the scheduled DAG keeps bounded).

A micro-batch commits a few small files to every streamed table each few seconds; without compaction a day of
streaming leaves tens of thousands of files behind, and every read plans over all of them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# Files below this size are rewritten into larger ones (Trino's optimize, per partition).
SMALL_FILE_THRESHOLD = "64MB"
# Snapshots and unreferenced files older than this are removed (Trino refuses less than its configured
# iceberg.expire-snapshots.min-retention / remove-orphan-files.min-retention, 7 days by default).
RETENTION = "7d"


@dataclass(frozen=True)
class CompactionReport:
    table: str
    files_before: int
    files_after: int
    snapshots_before: int
    snapshots_after: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scalar(cursor, sql: str) -> int:
    cursor.execute(sql)
    return int(cursor.fetchall()[0][0])


def compact_table(connection, schema: str, table: str, retention: str = RETENTION) -> CompactionReport:
    """Compact one Iceberg table over a Trino DB-API connection (the platform admin's: it runs table procedures)."""
    for name in (schema, table):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain Iceberg identifier: {name!r}")
    qualified = f'"{schema}"."{table}"'
    files = f'SELECT count(*) FROM "{schema}"."{table}$files"'  # noqa: S608 - identifiers checked above
    snapshots = f'SELECT count(*) FROM "{schema}"."{table}$snapshots"'  # noqa: S608
    cursor = connection.cursor()
    before = _scalar(cursor, files), _scalar(cursor, snapshots)
    for statement in (
        f"ALTER TABLE {qualified} EXECUTE optimize(file_size_threshold => '{SMALL_FILE_THRESHOLD}')",
        f"ALTER TABLE {qualified} EXECUTE expire_snapshots(retention_threshold => '{retention}')",
        f"ALTER TABLE {qualified} EXECUTE remove_orphan_files(retention_threshold => '{retention}')",
    ):
        cursor.execute(statement)
        cursor.fetchall()
    after = _scalar(cursor, files), _scalar(cursor, snapshots)
    return CompactionReport(f"{schema}.{table}", before[0], after[0], before[1], after[1])
