"""Put a rejected file under the quarantine prefix with a report saying why; never under its final key."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxi_anomaly.ingest.storage import RawStore
from taxi_anomaly.ingest.validation import ValidationReport
from taxi_anomaly.layout import FileKeys

VALIDATION_FAILED = "validation_failed"
SCHEMA_MISMATCH = "schema_mismatch"
UNREADABLE_CSV = "unreadable_csv"  # a CSV body that breaks off or has rows of the wrong width
CHECK_CRASHED = "check_crashed"  # a check raised an error nobody foresaw: the file goes aside, the report says what


def quarantine(
    store: RawStore,
    bucket: str,
    keys: FileKeys,
    local_file: Path,
    reason: str,
    message: str,
    source: dict[str, Any],
    details: dict[str, Any] | None = None,
    validation: ValidationReport | None = None,
) -> dict[str, Any]:
    """Upload the file and its report to the quarantine prefix. Returns the report.

    :param reason: a stable reason code (integrity.* codes, `schema_mismatch`, `validation_failed`).
    :param message: the human sentence naming the file and what is wrong.
    :param source: url, bytes and sha256 of the download.
    """
    report: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "details": details or {},
        "file": keys.quarantine.rsplit("/", 1)[-1],
        "bucket": bucket,
        "key": keys.quarantine,
        "intended_key": keys.data,
        **source,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if validation is not None:
        store.put_json(bucket, keys.quarantine_validation_json, validation.result)
        store.delete(bucket, keys.quarantine_validation_html)  # a page of an earlier result; data_docs.py renders
        report["failed_expectations"] = [asdict(f) for f in validation.hard_failures]
        report["warnings"] = [asdict(f) for f in validation.soft_failures]
        report["validation_report"] = {"json": keys.quarantine_validation_json, "html": keys.quarantine_validation_html}
    else:
        store.delete(bucket, keys.quarantine_validation_json, keys.quarantine_validation_html)
    store.put_file(bucket, keys.quarantine, local_file, metadata={"sha256": source.get("sha256", ""), "reason": reason})
    store.put_json(bucket, keys.quarantine_report, report)
    return report
