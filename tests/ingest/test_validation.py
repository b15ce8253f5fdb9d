"""Great Expectations validation on real months and samples, and on real data made wrong in one known way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.ingest.schema import CANONICAL_COLUMNS, NormalisationError
from taxi_anomaly.ingest.settings import IngestSettings, S3Settings, default_suites_dir
from taxi_anomaly.ingest.validation import DURATION, load_suite_definition, validate_file
from taxi_anomaly.tlc import TRIP_TYPES, YearMonth

JANUARY = YearMonth(2024, 1)


@pytest.fixture(scope="module")
def settings() -> IngestSettings:
    return IngestSettings(S3Settings("http://127.0.0.1:9"), metadata_dir=None)


@pytest.fixture(scope="module")
def green(tlc_data: Path) -> Path:
    return tlc_data / "green_tripdata_2024-01.parquet"


def with_negative_fares(source: Path, dest: Path, share: float) -> Path:
    table = pq.read_table(source)
    negative = pc.less(pa.array(range(table.num_rows)), int(share * table.num_rows))
    fares = pc.if_else(negative, pc.negate(pc.abs(table["fare_amount"])), table["fare_amount"])
    pq.write_table(table.set_column(table.schema.get_field_index("fare_amount"), "fare_amount", fares), dest)
    return dest


def test_real_month_passes_and_produces_gx_json_and_data_docs(green: Path, settings: IngestSettings):
    report = validate_file(green, "green", JANUARY, settings, official_rows=56_551, trailing_rows=[60_000] * 3)
    assert report.passed and report.hard_failures == [] and report.soft_failures == []
    assert report.rows == 56_551 and report.chunks == 1
    expectations = len(load_suite_definition(settings.suites_dir, "green")["expectations"])
    assert report.result["statistics"]["evaluated_expectations"] == expectations
    assert report.result["suite_name"] == "tlc_green"
    stored = json.loads(json.dumps(report.result))  # stored as JSON as it is
    assert report.normalisation["missing"][0] == "cbd_congestion_fee"  # then the coordinates of 2013-2016

    # The JSON is GX's own: GX loads it (checking every configuration) and writes back the same document.
    from taxi_anomaly.ingest.data_docs import gx_result, render_page

    assert gx_result(stored).to_json_dict() == stored
    html = render_page(stored)
    assert "<html" in html and "tlc_green" in html and "green_tripdata_2024-01.parquet" in html


def test_validation_does_not_import_great_expectations(green: Path):
    """The per-month ingest task pays no GX import (11-14 s); the Data Docs task renders the pages once per run."""
    script = f"""
import sys
from pathlib import Path
from taxi_anomaly.ingest.settings import IngestSettings, S3Settings
from taxi_anomaly.ingest.validation import validate_file
from taxi_anomaly.tlc import YearMonth
report = validate_file(Path({str(green)!r}), "green", YearMonth(2024, 1), IngestSettings(S3Settings("http://127.0.0.1:1")))
assert report.passed, report.describe_failures()
print(sorted(m for m in sys.modules if m.startswith("great_expectations")))
"""
    plugins = str(Path(__file__).resolve().parents[2] / "plugins")
    env = {**os.environ, "PYTHONPATH": plugins}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_chunked_validation_counts_exactly_what_one_pass_counts(green: Path, settings: IngestSettings):
    whole = validate_file(green, "green", JANUARY, settings, official_rows=56_551)
    chunked = validate_file(green, "green", JANUARY, settings.with_(validation_batch_rows=10_000), official_rows=56_551)
    assert (whole.chunks, chunked.chunks) == (1, 6)

    def counts(report) -> list[tuple]:
        return [
            (r["expectation_config"]["type"], r["success"], r["result"].get("unexpected_count"))
            for r in report.result["results"]
        ]

    assert counts(chunked) == counts(whole)
    negative_fares = [c for c in counts(whole) if c[2] == 182]
    assert negative_fares, "green 2024-01 has 182 negative fares, counted the same in 1 or 6 chunks"


def test_a_file_of_another_month_fails_hard_naming_the_expectation(green: Path, settings: IngestSettings):
    report = validate_file(green, "green", YearMonth(2030, 1), settings)
    assert not report.passed
    assert [f.column for f in report.hard_failures] == ["lpep_pickup_datetime"]
    assert "56551 of 56551 values (100.000%) unexpected, at most 2.00% allowed" in report.hard_failures[0].summary
    assert "lpep_pickup_datetime" in report.describe_failures()


def test_row_counts_official_is_hard_trailing_is_soft(green: Path, settings: IngestSettings):
    report = validate_file(green, "green", JANUARY, settings, official_rows=60_000, trailing_rows=[200_000] * 3)
    assert [f.expectation for f in report.hard_failures] == ["expect_table_row_count_to_be_between"]
    assert "observed 56551" in report.hard_failures[0].summary
    assert [f.expectation for f in report.soft_failures] == ["expect_table_row_count_to_be_between"]


@pytest.mark.parametrize(("share", "hard"), [(0.30, True), (0.054, False)])
def test_negative_fares_are_a_share_not_an_absolute(green: Path, settings, tmp_path: Path, share: float, hard: bool):
    dirty = with_negative_fares(green, tmp_path / "dirty.parquet", share)
    report = validate_file(dirty, "green", JANUARY, settings)
    soft = [f.column for f in report.soft_failures]
    assert "fare_amount" in soft
    assert report.passed is not hard
    assert ("fare_amount" in [f.column for f in report.hard_failures]) is hard


def test_a_missing_required_column_fails_hard(green: Path, settings: IngestSettings, tmp_path: Path):
    stripped = tmp_path / "no_fare.parquet"
    pq.write_table(pq.read_table(green).drop_columns(["fare_amount"]), stripped)
    report = validate_file(stripped, "green", JANUARY, settings)
    assert "required column 'fare_amount' is missing" in report.describe_failures()
    assert "could not run" not in report.describe_failures()  # the checks of the missing column say nothing more


@pytest.fixture
def yellow_sample(tlc_data: Path) -> pa.Table:
    return pacsv.read_csv(tlc_data / "samples" / "yellow_tripdata_2020-04_sample1000.csv")


def test_a_yellow_month_with_as_many_negative_fares_as_2025_lands(yellow_sample, settings, tmp_path: Path):
    fares = yellow_sample["fare_amount"]
    negative = pc.less(pa.array(range(len(fares))), 54)  # 5.4%, as in a random sample of yellow 2025-02
    flipped = pc.if_else(negative, pc.negate(pc.abs(fares)), fares)
    path = tmp_path / "yellow.parquet"
    pq.write_table(
        yellow_sample.set_column(yellow_sample.schema.get_field_index("fare_amount"), "fare_amount", flipped), path
    )
    report = validate_file(path, "yellow", YearMonth(2020, 4), settings, official_rows=1000)
    assert report.passed, report.describe_failures()
    assert "fare_amount" not in [f.column for f in report.soft_failures]


def test_2014_headers_with_leading_spaces_validate(yellow_sample, settings, tmp_path: Path):
    spaced = yellow_sample.rename_columns(
        [f" {name}" if i else name for i, name in enumerate(yellow_sample.column_names)]
    )
    path = tmp_path / "yellow_2014_style.parquet"
    pq.write_table(spaced, path)
    report = validate_file(path, "yellow", YearMonth(2020, 4), settings, official_rows=1000)
    assert report.passed, report.describe_failures()
    assert report.normalisation["renamed"][" tpep_pickup_datetime"] == "tpep_pickup_datetime"


def test_text_in_a_column_the_suite_does_not_read_is_refused_before_landing(yellow_sample, settings, tmp_path: Path):
    index = yellow_sample.schema.get_field_index("congestion_surcharge")
    text = pa.array(["2.5"] * 999 + ["n/a"])
    path = tmp_path / "yellow.parquet"
    pq.write_table(yellow_sample.set_column(index, "congestion_surcharge", text), path)
    with pytest.raises(NormalisationError, match=r"column 'congestion_surcharge' \(string\) cannot become"):
        validate_file(path, "yellow", YearMonth(2020, 4), settings, official_rows=1000)


@pytest.mark.parametrize("trip_type", TRIP_TYPES)
def test_real_samples_of_every_trip_type_pass_the_hard_checks(tlc_data, settings, tmp_path: Path, trip_type: str):
    sample = tlc_data / "samples" / f"{trip_type}_tripdata_2020-04_sample1000.csv"
    as_parquet = tmp_path / f"{trip_type}.parquet"
    pq.write_table(pacsv.read_csv(sample), as_parquet)
    report = validate_file(as_parquet, trip_type, YearMonth(2020, 4), settings, official_rows=1000)
    assert report.passed, report.describe_failures()
    assert report.result["statistics"]["evaluated_expectations"] >= 15


@pytest.mark.parametrize("trip_type", TRIP_TYPES)
def test_suites_are_valid_gx_suites_with_documented_thresholds(trip_type: str):
    from great_expectations.core.expectation_suite import ExpectationSuite

    definition = load_suite_definition(default_suites_dir(), trip_type)
    suite = ExpectationSuite(**definition)
    assert len(suite.expectations) == len(definition["expectations"])
    canonical = {name for name, _ in CANONICAL_COLUMNS[trip_type]} | {DURATION}
    severities = set()
    for expectation in definition["expectations"]:
        assert expectation["meta"]["why"], expectation
        severities.add(expectation["severity"])
        if "column" in expectation["kwargs"]:
            assert expectation["kwargs"]["column"] in canonical, expectation
    assert severities == {"critical", "warning"}


def test_a_file_without_rows_fails_hard_on_its_row_count(green: Path, settings: IngestSettings, tmp_path: Path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(green).slice(0, 0), empty)
    report = validate_file(empty, "green", JANUARY, settings)
    assert report.rows == 0 and report.chunks == 1
    assert [f.expectation for f in report.hard_failures] == ["expect_table_row_count_to_be_between"]


@pytest.fixture(scope="module")
def gx_reference():
    """GX's own pandas engine (one ephemeral context for the module): the reference for expectations.py's counts."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.data_sources.add_pandas("reference").add_dataframe_asset("frame").add_batch_definition_whole_dataframe(
        "all"
    )
    return context


def gx_pandas_results(context, table: pa.Table, definition: dict, parameters: dict) -> list[dict]:
    """The suite run by GX's pandas engine on one frame (ints as float64, times as ns, as pandas holds them)."""
    import uuid

    from great_expectations.core.expectation_suite import ExpectationSuite

    columns = [c.cast(pa.float64()) if pa.types.is_integer(c.type) else c for c in table.columns]
    columns = [c.cast(pa.timestamp("ns")) if pa.types.is_timestamp(c.type) else c for c in columns]
    frame = pa.Table.from_arrays(columns, names=table.column_names).to_pandas()
    batch_definition = context.data_sources.get("reference").get_asset("frame").get_batch_definition("all")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    name = f"reference-{uuid.uuid4().hex[:8]}"
    suite = context.suites.add(ExpectationSuite(name=name, expectations=definition["expectations"]))
    outcome = batch.validate(suite, expectation_parameters=parameters, result_format="SUMMARY")
    return [r.to_json_dict() for r in outcome.results]


def counted(results: list[dict]) -> dict[tuple, tuple]:
    """Each expectation's success and counts, keyed by what identifies it in a suite (GX reorders results)."""
    counts = {}
    for r in results:
        config, kwargs = r["expectation_config"], r["expectation_config"]["kwargs"]
        key = (config["type"], kwargs.get("column"), config["severity"], kwargs.get("mostly"), kwargs.get("type_"))
        values = ("element_count", "missing_count", "unexpected_count", "observed_value")
        counts[key] = (r["success"], *[r["result"].get(k) for k in values])
    assert len(counts) == len(results)
    return counts


@pytest.mark.parametrize("case", ["green 2024-01", "green 30% negative fares", "green as 2030-01", *TRIP_TYPES])
def test_the_arrow_engine_counts_exactly_what_gx_pandas_counts(
    case, green, tlc_data, settings, gx_reference, tmp_path: Path
):
    from taxi_anomaly.ingest.schema import Normaliser
    from taxi_anomaly.ingest.validation import _tables

    trip_type, month, path = "green", JANUARY, green
    if case == "green 30% negative fares":
        path = with_negative_fares(green, tmp_path / "dirty.parquet", 0.30)
    elif case == "green as 2030-01":
        month = YearMonth(2030, 1)
    elif case in TRIP_TYPES:
        trip_type, month, path = case, YearMonth(2020, 4), tmp_path / f"{case}.parquet"
        pq.write_table(pacsv.read_csv(tlc_data / "samples" / f"{case}_tripdata_2020-04_sample1000.csv"), path)
    report = validate_file(path, trip_type, month, settings, official_rows=pq.ParquetFile(path).metadata.num_rows)
    definition = load_suite_definition(settings.suites_dir, trip_type)
    parquet = pq.ParquetFile(path)
    (table,) = _tables(parquet, Normaliser.for_parquet(parquet, trip_type), definition, 10_000_000)
    reference = gx_pandas_results(gx_reference, table, definition, report.parameters)
    ours = report.result["results"]
    assert counted(ours) == counted(reference)
    assert any(not r["success"] for r in ours) == (case in ("green 30% negative fares", "green as 2030-01"))
