"""Ingest one TLC month into the raw zone: download, check, validate, then land or quarantine. Airflow calls this.

Order of one run (nothing is written under the final key before every check has passed):
1. skip if the month has landed before (manifest + object agree) and a HEAD of the source shows the same size
   and ETag, unless forced;
2. stream the file to a local temp file (sha256 as it goes; retries on transient errors; 404/403 = not published);
3. integrity: Content-Length, parquet magic at both ends, readable footer, official size and rows when known; a
   CSV or CSV.gz body (told by its content) is first converted to canonical parquet (csv_source.py), which is
   what is checked, validated and landed;
4. Great Expectations suite of the trip type, chunk by chunk, every column converted to the canonical schema;
5. land: reports, then the data file, then the manifest (the manifest marks completion), or quarantine; in the
   raw store the settings choose (S3 or HDFS, storage.py), each write all-or-nothing.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from taxi_anomaly.ingest.csv_source import CsvError, SourceFormat, csv_to_canonical_parquet, sniff_format
from taxi_anomaly.ingest.download import Downloaded, DownloadError, NotPublished, Progress, download, probe
from taxi_anomaly.ingest.integrity import (
    IntegrityError,
    check_official,
    check_parquet,
    check_zone_lookup,
    columns_fingerprint,
)
from taxi_anomaly.ingest.manifest import Manifest
from taxi_anomaly.ingest.metadata import OfficialFile, OfficialMetadata
from taxi_anomaly.ingest.quarantine import CHECK_CRASHED, SCHEMA_MISMATCH, UNREADABLE_CSV, VALIDATION_FAILED, quarantine
from taxi_anomaly.ingest.schema import DROPPED_COLUMNS, NormalisationError
from taxi_anomaly.ingest.settings import IngestSettings
from taxi_anomaly.ingest.storage import RawStore, open_raw_store
from taxi_anomaly.ingest.validation import ValidationReport, validate_file
from taxi_anomaly.layout import FileKeys, month_keys, zone_lookup_keys
from taxi_anomaly.tlc import (
    FIRST_MONTH,
    TRIP_TYPES,
    YearMonth,
    check_trip_type,
    file_name,
    month_range,
    source_url,
    zone_lookup_url,
)

log = logging.getLogger(__name__)


class Status(StrEnum):
    LANDED = "landed"
    SKIPPED_UNCHANGED = "skipped_unchanged"
    NOT_PUBLISHED = "not_published"
    QUARANTINED = "quarantined"


class IngestFailed(Exception):
    """Raised by `IngestOutcome.raise_if_failed` for a quarantined file (fails the Airflow task)."""


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one source file.

    :param status: landed / skipped_unchanged / not_published / quarantined.
    :param key: the object's key (final key if landed or skipped, quarantine key if quarantined).
    :param reason: quarantine reason code (integrity codes, `schema_mismatch`, `validation_failed`).
    :param message: one sentence naming the file and what happened.
    :param warnings: soft expectation failures and schema surprises (new columns or spellings) of a landed file.
    :param manifest: the manifest of a landed or skipped file.
    :param report: the quarantine report of a quarantined file.
    """

    status: Status
    file_name: str
    url: str
    message: str
    bucket: str | None = None
    key: str | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    manifest: dict[str, Any] | None = field(default=None, repr=False)
    report: dict[str, Any] | None = field(default=None, repr=False)

    def raise_if_failed(self) -> None:
        if self.status is Status.QUARANTINED:
            raise IngestFailed(self.message)


def ingest_month(
    trip_type: str,
    month: str | YearMonth,
    settings: IngestSettings,
    force: bool = False,
    *,
    store: RawStore | None = None,
    progress: Progress | None = None,
) -> IngestOutcome:
    """Bring one month of one trip type into the raw zone (see the module docstring for the steps).

    Whatever the file holds, the result is an outcome naming the file and what is wrong with it. Raised are only
    failures of the infrastructure, which a retry may cure: DownloadError when the source stays unreachable after
    every retry, and object-store errors (nothing is left half-written then).
    """
    trip_type = check_trip_type(trip_type)
    month = month if isinstance(month, YearMonth) else YearMonth.parse(month)
    store = store or open_raw_store(settings)
    keys = month_keys(trip_type, month, settings.key_prefix)
    first, *others = (source_url(settings.base_url, trip_type, month, suffix) for suffix in settings.source_suffixes)
    run = _Run(store, settings, keys, first, force, tuple(others))
    if not force and (skipped := run.skip_if_unchanged()):
        return skipped
    official = _official(settings, trip_type, month)
    with _staging(settings) as staging:
        local = staging / file_name(trip_type, month)
        fetched = run.fetch(local, progress)
        if isinstance(fetched, IngestOutcome):
            return fetched
        trailing = _trailing_rows(run, trip_type, month)
        try:
            source_format = sniff_format(local) or SourceFormat.PARQUET  # not parquet either: the check says what
            landing = local
            columns: list[list[str]] | None = None
            conversion: dict[str, Any] | None = None
            if source_format is not SourceFormat.PARQUET:
                landing = staging / f"canonical-{run.name}"
                converted = csv_to_canonical_parquet(local, landing, trip_type, source_format, run.name)
                columns = [[name, "text"] for name in converted.header]
                conversion = converted.report.to_dict()  # what was done to the source (the landed file is canonical)
                official = None  # the TLC listing describes its parquet publication, not this CSV
            facts = check_parquet(landing, run.name)
            check_official(run.name, fetched.bytes, facts.rows, official)
            report = validate_file(
                landing, trip_type, month, settings, official.rows if official else None, trailing, run.name
            )
        except IntegrityError as err:
            return run.quarantine(local, fetched, err.reason, str(err), err.details)
        except NormalisationError as err:
            return run.quarantine(local, fetched, SCHEMA_MISMATCH, f"{run.name}: {err}", {})
        except CsvError as err:
            return run.quarantine(local, fetched, UNREADABLE_CSV, str(err), {})
        except Exception as err:  # whatever a file does to a check, it ends as an outcome naming the file
            log.exception("%s: a check raised", run.name)
            message = f"{run.name}: the checks could not finish: {type(err).__name__}: {err}"
            return run.quarantine(local, fetched, CHECK_CRASHED, message, {"error": repr(err)})
        if not report.passed:
            message = (
                f"{run.name} failed {len(report.hard_failures)} hard expectation(s) of suite {report.suite}: "
                f"{report.describe_failures()}"
            )
            return run.quarantine(local, fetched, VALIDATION_FAILED, message, {}, report)
        manifest = run.manifest(
            fetched,
            rows=facts.rows,
            schema_fingerprint=facts.schema_fingerprint if columns is None else columns_fingerprint(columns),
            source_format=str(source_format),
            landed_bytes=landing.stat().st_size if landing != local else None,
            landed_sha256=_sha256(landing) if landing != local else None,
            trip_type=trip_type,
            month=str(month),
            row_groups=facts.row_groups,
            created_by=facts.created_by,
            columns=columns if columns is not None else [list(c) for c in facts.columns],
            normalisation=conversion or report.normalisation,
            official=_official_summary(official),
            validation=_validation_summary(report, run.keys),
        )
        return run.land(landing, manifest, report)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ingest_months(
    trip_types: list[str] | tuple[str, ...],
    first: str | YearMonth,
    last: str | YearMonth,
    settings: IngestSettings,
    force: bool = False,
) -> list[IngestOutcome]:
    """`ingest_month` over every trip type and month of a range (one store client for all)."""
    store = open_raw_store(settings)
    return [
        ingest_month(trip_type, month, settings, force, store=store)
        for trip_type in trip_types or TRIP_TYPES
        for month in month_range(first, last)
    ]


def ingest_zone_lookup(
    settings: IngestSettings, force: bool = False, *, store: RawStore | None = None
) -> IngestOutcome:
    """Bring the taxi zone lookup (/misc/taxi_zone_lookup.csv) into the raw zone, with a manifest."""
    store = store or open_raw_store(settings)
    run = _Run(store, settings, zone_lookup_keys(settings.key_prefix), zone_lookup_url(settings.base_url), force)
    if not force and (skipped := run.skip_if_unchanged()):
        return skipped
    with _staging(settings) as staging:
        local = staging / run.name
        fetched = run.fetch(local, None)
        if isinstance(fetched, IngestOutcome):
            return fetched
        try:
            zones = check_zone_lookup(local, run.name)
        except IntegrityError as err:
            return run.quarantine(local, fetched, err.reason, str(err), err.details)
        manifest = run.manifest(fetched, rows=zones, schema_fingerprint=None)
        return run.land(local, manifest, None, content_type="text/csv")


@dataclass
class _Run:
    """One source file's trip through the steps; holds what every step needs."""

    store: RawStore
    settings: IngestSettings
    keys: FileKeys
    url: str  # the source; after `fetch`, the one of `url` and `fallback_urls` that answered
    force: bool = False
    fallback_urls: tuple[str, ...] = ()  # tried in order when the source answers 404/403

    @property
    def name(self) -> str:
        return self.keys.data.rsplit("/", 1)[-1]

    @property
    def bucket(self) -> str:
        return self.settings.raw_bucket

    def landed_manifest(self) -> Manifest | None:
        """The manifest of a complete earlier landing (manifest present and agreeing with the object), or None."""
        info = self.store.stat(self.bucket, self.keys.data)
        if info is None or not self.store.exists(self.bucket, self.keys.manifest):
            return None
        manifest = Manifest.from_dict(self.store.get_json(self.bucket, self.keys.manifest))
        size, sha256 = manifest.landed_bytes or manifest.bytes, manifest.landed_sha256 or manifest.sha256
        if info.size != size or info.metadata.get("sha256", sha256) != sha256:
            log.warning("%s: object and manifest disagree; ingesting again", self.keys.data)
            return None
        return manifest

    def skip_if_unchanged(self) -> IngestOutcome | None:
        previous = self.landed_manifest()
        if previous is None:
            return None
        try:
            remote = probe(previous.source_url, self.settings)  # where it came from (a fallback name maybe)
        except NotPublished as err:
            return self._skipped(previous, f"the source now answers HTTP {err.status}; keeping the landed copy")
        except DownloadError as err:
            log.info("%s: HEAD failed (%s); downloading to compare checksums", self.name, err)
            return None
        same_size = remote.content_length == previous.bytes
        same_etag = remote.etag is None or previous.etag is None or remote.etag == previous.etag
        if same_size and same_etag:
            return self._skipped(previous, "the source's size and ETag are unchanged")
        return None

    def _skipped(self, previous: Manifest, why: str) -> IngestOutcome:
        message = (
            f"{self.name} already landed at {self.store.uri(self.bucket, self.keys.data)} "
            f"({previous.bytes} bytes, sha256 {previous.sha256[:12]}...): {why}; skipped (force to ingest again)"
        )
        log.info(message)
        return IngestOutcome(
            Status.SKIPPED_UNCHANGED,
            self.name,
            self.url,
            message,
            self.bucket,
            self.keys.data,
            manifest=asdict(previous),
        )

    def fetch(self, local: Path, progress: Progress | None) -> Downloaded | IngestOutcome:
        missing: list[str] = []
        for url in (self.url, *self.fallback_urls):
            try:
                fetched = download(url, local, self.settings, progress)
            except NotPublished as err:
                missing.append(str(err))
                continue
            self.url = url
            break
        else:
            message = f"{self.name} is not published yet or does not exist: {'; '.join(missing)}"
            log.info(message)
            return IngestOutcome(Status.NOT_PUBLISHED, self.name, self.url, message)
        previous = None if self.force else self.landed_manifest()
        if previous is not None and previous.sha256 == fetched.sha256:
            return self._skipped(previous, "the downloaded file has the same sha256")
        return fetched

    def manifest(self, fetched: Downloaded, **described: Any) -> Manifest:
        """The manifest of this download: where it came from and went, its bytes, plus what the checks found."""
        return Manifest(
            file_name=self.name,
            source_url=self.url,
            bucket=self.bucket,
            key=self.keys.data,
            bytes=fetched.bytes,
            sha256=fetched.sha256,
            content_length=fetched.content_length,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            download_seconds=round(fetched.seconds, 3),
            attempts=fetched.attempts,
            **described,
        )

    def quarantine(
        self,
        local: Path,
        fetched: Downloaded,
        reason: str,
        message: str,
        details: dict[str, Any],
        validation: ValidationReport | None = None,
    ) -> IngestOutcome:
        source = {"source_url": self.url, "bytes": fetched.bytes, "sha256": fetched.sha256}
        report = quarantine(
            self.store, self.bucket, self.keys, local, reason, message, source, details=details, validation=validation
        )
        where = self.store.uri(self.bucket, self.keys.quarantine)
        text = f"{message} -> quarantined at {where} (report {self.keys.quarantine_report})"
        log.error(text)
        return IngestOutcome(
            Status.QUARANTINED, self.name, self.url, text, self.bucket, self.keys.quarantine, reason, report=report
        )

    def land(
        self,
        local: Path,
        manifest: Manifest,
        report: ValidationReport | None,
        content_type: str = "application/octet-stream",
    ) -> IngestOutcome:
        if report is not None:
            self.store.put_json(self.bucket, self.keys.validation_json, report.result)
            self.store.delete(self.bucket, self.keys.validation_html)  # a page of an earlier result; data_docs.py
        sha256 = manifest.landed_sha256 or manifest.sha256
        self.store.put_file(self.bucket, self.keys.data, local, content_type, metadata={"sha256": sha256})
        self.store.put_json(self.bucket, self.keys.manifest, manifest.to_dict())
        self.store.delete(self.bucket, *self.keys.quarantined)
        soft = tuple(f.summary for f in report.soft_failures) if report else ()
        warnings = _schema_warnings(manifest.normalisation) + soft
        for warning in warnings:
            log.warning("%s: %s", self.name, warning)
        message = (
            f"{self.name} landed at {self.store.uri(self.bucket, self.keys.data)} ({manifest.rows} rows, "
            f"{manifest.bytes} bytes, {len(warnings)} warning(s))"
        )
        log.info(message)
        return IngestOutcome(
            Status.LANDED,
            self.name,
            self.url,
            message,
            self.bucket,
            self.keys.data,
            warnings=warnings,
            manifest=manifest.to_dict(),
        )


def _official(settings: IngestSettings, trip_type: str, month: YearMonth) -> OfficialFile | None:
    if settings.metadata_dir is None:
        return None
    return OfficialMetadata(settings.metadata_dir).lookup(trip_type, month)


def _trailing_rows(run: _Run, trip_type: str, month: YearMonth) -> list[int]:
    """Row counts of the trailing months: from the official listing, else from manifests of landed months."""
    counts = []
    current = month
    for _ in range(run.settings.trailing_months):
        if current == FIRST_MONTH:  # the months of 2009 have fewer months before them
            break
        current = current.previous()
        official = _official(run.settings, trip_type, current)
        if official is not None:
            counts.append(official.rows)
            continue
        keys = month_keys(trip_type, current, run.settings.key_prefix)
        if run.store.exists(run.bucket, keys.manifest):
            rows = run.store.get_json(run.bucket, keys.manifest).get("rows")
            if rows is not None:
                counts.append(int(rows))
    return counts


def _schema_warnings(normalisation: dict[str, Any] | None) -> tuple[str, ...]:
    """Surprises worth a look: columns outside the canonical schema, duplicate columns dropped, conversion notes."""
    if not normalisation:
        return ()
    warnings = list(normalisation.get("notes", []))
    if normalisation.get("extra"):
        warnings.append(f"columns outside the canonical schema (kept as they are): {', '.join(normalisation['extra'])}")
    dropped = normalisation.get("dropped", {})
    warnings += [f"column {name!r} dropped: {dropped[name]}" for name in dropped if name not in DROPPED_COLUMNS]
    return tuple(warnings)


def _official_summary(official: OfficialFile | None) -> dict[str, Any] | None:
    if official is None:
        return None
    return {
        "rows": official.rows,
        "bytes": official.size_bytes,
        "modified": official.modified,
        "listing": official.listing.name,
    }


def _validation_summary(report: ValidationReport, keys: FileKeys) -> dict[str, Any]:
    return {
        "suite": report.suite,
        "passed": report.passed,
        "chunks": report.chunks,
        "warnings": [f.summary for f in report.soft_failures],
        "parameters": {k: str(v) for k, v in report.parameters.items()},
        "report_json": keys.validation_json,
        "report_html": keys.validation_html,
    }


@contextmanager
def _staging(settings: IngestSettings) -> Iterator[Path]:
    """A private temp folder for the download, removed afterwards whatever happens."""
    if settings.work_dir is not None:
        Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tap-ingest-", dir=settings.work_dir) as folder:
        yield Path(folder)
