"""Validate a month's file with its Great Expectations suite, chunk by chunk, into one GX validation result.

A suite per trip type lives in include/great_expectations/expectations/{trip_type}.json (severity `critical` =
hard: the file is quarantined; `warning` = soft: reported, the file lands). The file is read in chunks of
`validation_batch_rows` rows, each normalised to the canonical schema (every column, so that a file that passes
also normalises); the suite's expectations are counted on each chunk with pyarrow (expectations.py, GX's
semantics) and the per-chunk counts summed, so that a 20 M-row fhvhv month needs one chunk's memory. The summed
outcomes are written as GX validation result JSON (the schema of `ExpectationSuiteValidationResult.to_json_dict`),
without importing GX: importing it costs 11-14 s, once per DAG run in data_docs.py (which renders the Data Docs
page from this JSON) instead of once per month. Month bounds and expected row counts are suite parameters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxi_anomaly.ingest.expectations import PARTIAL_VALUES, Part, evaluate, resolve, supported
from taxi_anomaly.ingest.schema import DROPOFF_COLUMN, PICKUP_COLUMN, Normaliser
from taxi_anomaly.ingest.settings import IngestSettings
from taxi_anomaly.tlc import YearMonth, check_trip_type

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

DURATION = "trip_duration_minutes"
ROW_COUNT = ("expect_table_row_count_to_be_between",)
EXISTS = "expect_column_to_exist"


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    severity: str
    summary: str


@dataclass
class ValidationReport:
    """The outcome of validating one file. `result` is the GX validation result as JSON (data_docs.py renders it)."""

    suite: str
    file: str
    rows: int
    chunks: int
    parameters: dict[str, Any]
    normalisation: dict = field(default_factory=dict)
    hard_failures: list[FailedExpectation] = field(default_factory=list)
    soft_failures: list[FailedExpectation] = field(default_factory=list)
    result: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.hard_failures

    def describe_failures(self, hard: bool = True) -> str:
        failures = self.hard_failures if hard else self.soft_failures
        return "; ".join(f.summary for f in failures)


def load_suite_definition(suites_dir: Path, trip_type: str) -> dict:
    path = Path(suites_dir) / f"{check_trip_type(trip_type)}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no expectation suite for {trip_type} at {path}")
    definition = json.loads(path.read_text())
    unknown = sorted({e["type"] for e in definition["expectations"] if not supported(e["type"])})
    if unknown:
        raise ValueError(f"{path}: expectation type(s) {unknown} are not evaluated by expectations.py; add them there")
    return definition


def suite_parameters(
    month: YearMonth, settings: IngestSettings, official_rows: int | None, trailing_rows: list[int]
) -> dict[str, Any]:
    """The run-time values of the suites' `$PARAMETER`s for one month (see docs/ingestion.md)."""
    start = datetime(month.year, month.month, 1)
    following = month.next()
    end = datetime(following.year, following.month, 1)
    tolerance = timedelta(hours=settings.month_tolerance_hours)
    low, high = settings.trailing_row_ratio
    mean = sum(trailing_rows) / len(trailing_rows) if trailing_rows else None
    return {
        "month_start": start,
        "month_end": end,
        "window_start": start - tolerance,
        "window_end": end + tolerance,
        "rows_min": official_rows if official_rows is not None else 1,
        "rows_max": official_rows,
        "trailing_rows_min": int(low * mean) if mean else 0,
        "trailing_rows_max": int(high * mean) + 1 if mean else None,
    }


def validate_file(
    path: Path,
    trip_type: str,
    month: YearMonth,
    settings: IngestSettings,
    official_rows: int | None = None,
    trailing_rows: list[int] | None = None,
    name: str | None = None,
) -> ValidationReport:
    """Run the trip type's suite over a local parquet file. Raises NormalisationError if columns cannot be mapped."""
    import pyarrow.parquet as pq

    definition = load_suite_definition(settings.suites_dir, trip_type)
    parameters = suite_parameters(month, settings, official_rows, trailing_rows or [])
    expectations = [(e["type"], resolve(e["kwargs"], parameters)) for e in definition["expectations"]]
    parquet = pq.ParquetFile(path)
    rows = parquet.metadata.num_rows
    normaliser = Normaliser.for_parquet(parquet, trip_type)

    merged = [_Merged(kind, kwargs) for kind, kwargs in expectations]
    chunks = offset = 0
    for table in _tables(parquet, normaliser, definition, settings.validation_batch_rows):
        for (kind, kwargs), total in zip(expectations, merged, strict=True):
            total.add(evaluate(kind, kwargs, table, offset))
        offset += table.num_rows
        chunks += 1
    normaliser.check_no_column_emptied(name or path.name)

    configurations = _configurations(definition, parameters)
    results = [total.result(config) for total, config in zip(merged, configurations, strict=True)]
    report = ValidationReport(definition["name"], name or path.name, rows, chunks, parameters)
    report.result = _suite_result(definition["name"], results, parameters, name or path.name, rows, chunks)
    report.normalisation = normaliser.report.to_dict()
    failed = [item for item in results if not item["success"]]
    # An expectation on a missing column cannot run; the missing column is the failure to report.
    missing = {_column(i) for i in failed if i["expectation_config"]["type"] == EXISTS}
    for item in failed:
        if item["exception_info"].get("raised_exception") and _column(item) in missing:
            continue
        failure = _describe(item)
        (report.hard_failures if failure.severity == "critical" else report.soft_failures).append(failure)
    return report


def _configurations(definition: dict, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's expectation configurations as GX writes them in a result: parameters filled in, nulls dropped."""
    configurations = []
    for expectation in definition["expectations"]:
        kwargs = {k: json_value(v) for k, v in resolve(expectation["kwargs"], parameters).items() if v is not None}
        configuration = {"type": expectation["type"], "kwargs": kwargs, "meta": expectation.get("meta", {})}
        configurations.append(configuration | {"severity": expectation.get("severity", "critical")})
    return configurations


def json_value(value: Any) -> Any:
    """A value as GX's JSON has it: datetimes and dates in ISO format, containers element by element."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def _tables(parquet: pq.ParquetFile, normaliser: Normaliser, definition: dict, batch_rows: int) -> Iterator[pa.Table]:
    """Chunks of the canonical columns the suite uses, plus the derived trip duration."""
    import pyarrow as pa

    referenced = {e["kwargs"]["column"] for e in definition["expectations"] if "column" in e["kwargs"]}
    required = {e["kwargs"]["column"] for e in definition["expectations"] if e["type"] == EXISTS}
    pickup, dropoff = PICKUP_COLUMN[normaliser.trip_type], DROPOFF_COLUMN[normaliser.trip_type]
    canonical = [f.name for f in normaliser.target if f.name in referenced | {pickup, dropoff}]
    # Every column is converted, not only the suite's: a file that lands always normalises.
    for batch in _at_least_one(parquet.iter_batches(batch_size=batch_rows), parquet.schema_arrow):
        normalised = normaliser.apply(batch)
        table = normalised.select([name for name in canonical if name in normaliser.sources])
        for name in canonical:
            if name not in table.column_names and name not in required:
                table = table.append_column(name, pa.nulls(table.num_rows, normaliser.target.field(name).type))
        if DURATION in referenced:
            table = table.append_column(DURATION, _duration_minutes(table, pickup, dropoff))
        yield table


def _at_least_one(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[Any]:
    """The batches, or one empty table for a file without rows (so column checks still run)."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield schema.empty_table()


def _duration_minutes(table: pa.Table, pickup: str, dropoff: str) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pickup not in table.column_names or dropoff not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])
    micros = pc.subtract(table[dropoff], table[pickup]).cast(pa.int64())
    return pc.divide(micros.cast(pa.float64()), 60_000_000.0)


class _Merged:
    """Sums one expectation's per-chunk outcomes into one GX result (exact for counts; partial lists are samples).

    Per-value expectations: counts are summed and `mostly` is applied to the sums, as GX does on one frame.
    Row counts: the chunks' rows are summed and compared with the bounds. Others (existence, types): all chunks
    must pass.
    """

    def __init__(self, kind: str, kwargs: dict[str, Any]) -> None:
        self.kind, self.kwargs = kind, kwargs
        self.parts: list[Part] = []

    def add(self, part: Part) -> None:
        self.parts.append(part)

    def result(self, config: dict[str, Any]) -> dict[str, Any]:
        """The GX ExpectationValidationResult (as JSON) of the whole file, for the expectation's configuration."""
        first = self.parts[0]
        failed = next((p for p in self.parts if p.exception_info.get("raised_exception")), None)
        if failed is not None:
            success, result, exception_info = False, {}, failed.exception_info
        elif self.kind in ROW_COUNT:
            rows = sum(p.result["observed_value"] for p in self.parts)
            low, high = self.kwargs.get("min_value"), self.kwargs.get("max_value")
            success = (low is None or rows >= low) and (high is None or rows <= high)
            result, exception_info = {"observed_value": rows}, first.exception_info
        elif "unexpected_count" not in first.result:
            success, result, exception_info = all(p.success for p in self.parts), first.result, first.exception_info
        else:
            success, result, exception_info = self._mostly_success(), self._summed(), first.exception_info
        return {
            "success": success,
            "expectation_config": config,
            "result": json_value(result),
            "meta": {},
            "exception_info": exception_info,
        }

    def _counts(self) -> tuple[int, int, int]:
        elements = sum(p.result.get("element_count", 0) for p in self.parts)
        missing = sum(p.result.get("missing_count", 0) for p in self.parts)
        unexpected = sum(p.result.get("unexpected_count", 0) for p in self.parts)
        return elements, missing, unexpected

    def _mostly_success(self) -> bool:
        elements, missing, unexpected = self._counts()
        considered = elements - missing
        if considered == 0 or unexpected == 0:
            return True
        mostly = self.kwargs.get("mostly", 1.0)
        return (considered - unexpected) / considered >= mostly

    def _summed(self) -> dict:
        elements, missing, unexpected = self._counts()
        considered = elements - missing
        counts: Counter = Counter()
        for part in self.parts:
            for entry in part.result.get("partial_unexpected_counts", []):
                counts[entry["value"]] += entry["count"]
        result = {
            "element_count": elements,
            "unexpected_count": unexpected,
            "unexpected_percent": 100 * unexpected / considered if considered else 0.0,
            "partial_unexpected_list": [v for p in self.parts for v in p.result.get("partial_unexpected_list", [])][
                :PARTIAL_VALUES
            ],
            "partial_unexpected_index_list": [
                i for p in self.parts for i in p.result.get("partial_unexpected_index_list", [])
            ][:PARTIAL_VALUES],
            "partial_unexpected_counts": [
                {"value": value, "count": count} for value, count in counts.most_common(PARTIAL_VALUES)
            ],
        }
        if "missing_count" in self.parts[0].result:
            result |= {
                "missing_count": missing,
                "missing_percent": 100 * missing / elements if elements else 0.0,
                "unexpected_percent_total": 100 * unexpected / elements if elements else 0.0,
                "unexpected_percent_nonmissing": result["unexpected_percent"],
            }
        return result


def _suite_result(suite: str, results: list[dict], parameters: dict, file: str, rows: int, chunks: int) -> dict:
    passed = sum(1 for r in results if r["success"])
    now = datetime.now().astimezone()
    return {
        "success": passed == len(results),
        "results": results,
        "suite_name": suite,
        "suite_parameters": {k: str(v) for k, v in parameters.items()},
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": 100 * passed / len(results) if results else 100.0,
        },
        "meta": {
            "file": file,
            "rows": rows,
            "chunks": chunks,
            "validation_time": now.isoformat(timespec="seconds"),
            "run_id": {"run_name": file, "run_time": now.isoformat()},
        },
        "id": None,
    }


def _column(item: dict[str, Any]) -> str | None:
    return item["expectation_config"]["kwargs"].get("column")


def _describe(item: dict[str, Any]) -> FailedExpectation:
    config = item["expectation_config"]
    kwargs = config["kwargs"]
    column = kwargs.get("column")
    severity = str(config.get("severity") or "critical")
    name = f"{config['type']}({column})" if column else config["type"]
    result = item["result"] or {}
    if item["exception_info"].get("raised_exception"):
        text = f"{name} could not run: {item['exception_info'].get('exception_message')}"
    elif config["type"] == EXISTS:
        text = f"required column {column!r} is missing"
    elif "unexpected_count" in result:
        allowed = 100 * (1 - kwargs.get("mostly", 1.0))
        bounds = _bounds(kwargs)
        examples = ", ".join(f"{e['value']} x{e['count']}" for e in result.get("partial_unexpected_counts", [])[:3])
        text = (
            f"{name}{bounds}: {result['unexpected_count']} of {result.get('element_count')} values "
            f"({result.get('unexpected_percent', 0):.3f}%) unexpected, at most {allowed:.2f}% allowed"
            + (f" (e.g. {examples})" if examples else "")
        )
    else:
        text = f"{name}{_bounds(kwargs)}: observed {result.get('observed_value')!r}"
    return FailedExpectation(config["type"], column, severity, text)


def _bounds(kwargs: dict) -> str:
    parts = [f"{k}={kwargs[k]}" for k in ("min_value", "max_value", "type_") if kwargs.get(k) is not None]
    if "value_set" in kwargs:
        parts.append(f"value_set={kwargs['value_set']}")
    return f" [{', '.join(parts)}]" if parts else ""
