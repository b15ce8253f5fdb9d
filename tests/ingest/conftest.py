"""Fixtures of the ingestion tests: the real reference data, an in-process TLC mirror, the raw store and clean-up.

The raw store is S3 unless a test asks for both with `@pytest.mark.parametrize("raw_store", RAW_STORES,
indirect=True)`: then it runs once against MinIO and once against HDFS (started once per session)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.ingest.mirror import Mirror
from taxi_anomaly.ingest.settings import HdfsSettings, IngestSettings, S3Settings, shared_data_dir
from taxi_anomaly.ingest.storage import ObjectStore, RawStore, open_raw_store
from taxi_anomaly.tlc import YearMonth

GREEN_2024_01 = "green_tripdata_2024-01.parquet"
RAW_STORES = ("s3", "hdfs")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository (or $TAP_SHARED_DATA_DIR): real TLC files, never modified."""
    folder = shared_data_dir()
    if not (folder / "tlc" / GREEN_2024_01).is_file():
        pytest.fail(f"reference data not found at {folder}; set TAP_SHARED_DATA_DIR to the shared/data folder")
    return folder


@pytest.fixture(scope="session")
def tlc_data(shared_data: Path) -> Path:
    return shared_data / "tlc"


@pytest.fixture
def generated_dir(tmp_path: Path) -> Path:
    """A folder of generated months, served by the mirror after the shared data."""
    folder = tmp_path / "generated"
    folder.mkdir()
    return folder


@pytest.fixture
def mirror(shared_data: Path, generated_dir: Path) -> Iterator[Mirror]:
    with Mirror([shared_data, generated_dir]) as running:
        yield running


@pytest.fixture(scope="session")
def s3_settings(platform) -> S3Settings:
    cfg, creds = platform.cfg, platform.creds
    return S3Settings(f"http://127.0.0.1:{cfg.minio_port}", creds.minio_root_user, creds.minio_root_password)


@pytest.fixture
def raw_store(request: pytest.FixtureRequest) -> str:
    """Which raw store the test runs against: "s3" unless parametrised (indirect) with RAW_STORES."""
    kind = getattr(request, "param", "s3")
    if kind == "hdfs":
        request.getfixturevalue("hdfs")
    return kind


def hdfs_settings(cfg) -> HdfsSettings:
    return HdfsSettings(cfg.webhdfs_url, cfg.hdfs_user, cfg.hdfs_uri)


@pytest.fixture
def store(s3_settings: S3Settings, raw_store: str, platform) -> RawStore:
    if raw_store == "hdfs":
        from taxi_anomaly.ingest.hdfs_storage import HdfsStore

        return HdfsStore(hdfs_settings(platform.cfg))
    return ObjectStore(s3_settings)


@pytest.fixture
def settings(
    platform, s3_settings, raw_store, store, mirror, tlc_data, tmp_path, unique_name
) -> Iterator[IngestSettings]:
    """Settings against the real raw store and the in-process mirror, under a key prefix no one else uses."""
    prefix = f"{unique_name}/"
    ingest = IngestSettings(
        s3_settings,
        raw_store=raw_store,
        hdfs=hdfs_settings(platform.cfg) if raw_store == "hdfs" else None,
        base_url=mirror.url,
        allowed_sources=(mirror.url,),
        raw_bucket=platform.cfg.raw_bucket,
        key_prefix=prefix,
        metadata_dir=tlc_data / "metadata",
        work_dir=tmp_path / "work",
        backoff_initial_s=0.02,
        backoff_max_s=0.2,
        read_timeout_s=5.0,
    )
    assert type(open_raw_store(ingest)) is type(store)
    yield ingest
    store.delete_prefix(ingest.raw_bucket, prefix)


@pytest.fixture
def shifted_month(generated_dir: Path, tlc_data: Path) -> Callable[..., Path]:
    """Writes the real green 2024-01 with its times moved into another (31-day) month into the generated folder:
    a valid file for a month no official listing knows. Options: drop the first rows, add an unknown column."""

    def write(month: YearMonth, drop_rows: int = 0, extra_column: str | None = None) -> Path:
        table = pq.read_table(tlc_data / GREEN_2024_01)
        shift = pa.scalar(datetime(month.year, month.month, 1) - datetime(2024, 1, 1), pa.duration("us"))
        for name in ("lpep_pickup_datetime", "lpep_dropoff_datetime"):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pc.add(table[name], shift))
        if extra_column:
            table = table.append_column(extra_column, pa.array([1.0] * table.num_rows))
        dest = generated_dir / f"green_tripdata_{month}.parquet"
        pq.write_table(table.slice(drop_rows), dest)
        return dest

    return write
