"""generate_month: check the request, plan the month, write its parquet, labels and trip labels atomically, chunk by
chunk."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from taxi_anomaly.synthetic.dirt import DirtOptions
from taxi_anomaly.synthetic.draw import DrawnChunk, draw_chunk
from taxi_anomaly.synthetic.episodes import EPISODE_TYPES, Episode, EpisodeRequest, default_requests
from taxi_anomaly.synthetic.labels import Labels, labels_file_name, trip_labels_file_name, trip_labels_table
from taxi_anomaly.synthetic.plan import DEFAULT_CHUNK_ROWS, ChunkPlan, MonthPlan, plan_month
from taxi_anomaly.synthetic.schemas import DICTIONARY_COLUMNS, TIMESTAMP_ENCODING, TLC_SCHEMAS
from taxi_anomaly.synthetic.trips import TRIP_TYPE_MODELS
from taxi_anomaly.tlc import TRIP_TYPES, YearMonth, check_trip_type, file_name

# fhv records carry no fare and no distance: a fare surge would be invisible, a distance shift shows in durations.
OBSERVABLE_TYPES = {trip_type: EPISODE_TYPES for trip_type in TRIP_TYPES}
OBSERVABLE_TYPES["fhv"] = tuple(name for name in EPISODE_TYPES if name != "fare_surge")


@dataclass(frozen=True)
class GenerationResult:
    """What generate_month wrote."""

    data_path: Path
    labels_path: Path
    trip_labels_path: Path
    rows: int
    episodes: list[Episode]
    dirt: dict[str, int]
    seconds: float
    draw_cpu_seconds: float = 0.0  # CPU time spent drawing the rows (worker thread)
    encode_cpu_seconds: float = 0.0  # CPU time spent encoding and writing the parquet file (calling thread)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def generate_month(
    trip_type: str,
    month: str | YearMonth,
    out_dir: str | os.PathLike,
    *,
    trips: int | None = None,
    seed: int = 0,
    anomalies: str | Sequence[EpisodeRequest | str | dict] = "default",
    dirt: bool | DirtOptions = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> GenerationResult:
    """Write `{trip_type}_tripdata_{YYYY-MM}.parquet`, its `.labels.json` and `.trip_labels.parquet` into out_dir.

    :param trip_type: yellow, green, fhv or fhvhv.
    :param month: YYYY-MM.
    :param out_dir: folder for the three files (created if missing).
    :param trips: rows to write, dirt included; a realistic count for the trip type if None.
    :param seed: same (trip_type, month, seed, options) gives byte-identical files.
    :param anomalies: "default" (one episode of each observable type), "none" (a clean month for training
        history) or a list of EpisodeRequest / type names / dicts with EpisodeRequest's fields.
    :param dirt: True for the default DirtOptions, False for none, or explicit DirtOptions.
    :param chunk_rows: rows per chunk and parquet row group (memory bound).
    """
    started = time.perf_counter()
    trip_type = _checked_trip_type(trip_type)
    month = _checked_month(month)
    rows = _checked_trips(trips, trip_type)
    seed = _checked_seed(seed)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows: must be positive, got {chunk_rows}")
    dirt_options = dirt if isinstance(dirt, DirtOptions) else DirtOptions() if dirt else DirtOptions.clean()
    requests = _checked_requests(anomalies, trip_type)
    folder = _checked_out_dir(out_dir)
    plan = plan_month(trip_type, month, rows, seed, requests, dirt_options, chunk_rows)

    data_path = folder / file_name(trip_type, month)
    labels_path = folder / labels_file_name(trip_type, month)
    trip_labels_path = folder / trip_labels_file_name(trip_type, month)
    labels = Labels(
        trip_type=trip_type,
        month=str(month),
        data_file=data_path.name,
        seed=seed,
        rows=rows,
        options={"anomalies": _describe(anomalies), "dirt": dirt_options.to_json(), "chunk_rows": chunk_rows},
        dirt=plan.dirt_totals(),
        episodes=plan.episodes,
    )
    faults: list[tuple[int, dict[str, np.ndarray]]] = []
    cpu = _write_atomically(data_path, lambda path: write_parquet(plan, path, faults))
    _write_atomically(trip_labels_path, lambda path: pq.write_table(trip_labels_table(faults), path))
    _write_atomically(labels_path, lambda path: path.write_text(labels.to_json()))
    seconds = time.perf_counter() - started
    return GenerationResult(data_path, labels_path, trip_labels_path, rows, plan.episodes, labels.dirt, seconds, *cpu)


def write_parquet(
    plan: MonthPlan, path: Path, faults: list[tuple[int, dict[str, np.ndarray]]] | None = None
) -> tuple[float, float]:
    """Draw and write chunk by chunk; the next chunk is drawn on a second thread while one is written.

    Drawing (numpy) and encoding (pyarrow) both release the GIL, so on two cores the run takes about as long as
    the slower of the two. Returns the CPU seconds of (drawing, encoding).

    :param faults: if given, receives (first row of the chunk in the file, the chunk's fault rows) per chunk.
    """
    schema = TLC_SCHEMAS[plan.trip_type]
    draw_cpu = []

    def draw(chunk: ChunkPlan) -> DrawnChunk:
        started = time.thread_time()
        drawn = draw_chunk(plan, chunk)
        draw_cpu.append(time.thread_time() - started)
        return drawn

    encode_started = time.thread_time()
    writer = pq.ParquetWriter(
        path,
        schema,
        compression="zstd",  # as the TLC's own files
        use_dictionary=DICTIONARY_COLUMNS[plan.trip_type],
        column_encoding=TIMESTAMP_ENCODING[plan.trip_type],
        write_statistics=False,  # the TLC's files carry no column statistics either
    )
    first_row = 0
    with writer, ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthetic-chunk") as pool:
        upcoming: Future[DrawnChunk] = pool.submit(draw, plan.chunks[0])
        for following in [*plan.chunks[1:], None]:
            drawn = upcoming.result()
            if following is not None:
                upcoming = pool.submit(draw, following)
            table = drawn.table
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            if faults is not None:
                faults.append((first_row, drawn.faults))
            first_row += table.num_rows
            del table, drawn  # (not kept alive while the next chunk is awaited)
    return sum(draw_cpu), time.thread_time() - encode_started


def _write_atomically(target: Path, write):
    """Write to a hidden temporary file beside the target and rename it over the target only when complete."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        written = write(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return written


def _describe(anomalies: str | Sequence) -> str | list:
    if isinstance(anomalies, str):
        return anomalies
    described = []
    for request in (EpisodeRequest.coerce(item) for item in anomalies):
        item = asdict(request)
        item["start"] = None if request.start is None else str(request.start)
        item["scope"] = request.scope if isinstance(request.scope, str) else list(request.scope)
        described.append(item)
    return described


def _checked_trip_type(trip_type: str) -> str:
    try:
        return check_trip_type(trip_type)
    except ValueError as error:
        raise ValueError(f"trip_type: {error}") from None


def _checked_month(month: str | YearMonth) -> YearMonth:
    if isinstance(month, YearMonth):
        return month
    try:
        return YearMonth.parse(str(month))
    except ValueError as error:
        raise ValueError(f"month: {error}") from None


def _checked_trips(trips: int | None, trip_type: str) -> int:
    if trips is None:
        return TRIP_TYPE_MODELS[trip_type].default_trips
    if isinstance(trips, bool) or not isinstance(trips, int | np.integer) or trips < 1:
        raise ValueError(f"trips: must be a positive whole number of trips, got {trips!r}")
    return int(trips)


def _checked_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    return int(seed)


def _checked_out_dir(out_dir: str | os.PathLike) -> Path:
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"out_dir: cannot write into {folder}: {error.strerror or error}") from None
    return folder


def _checked_requests(anomalies: str | Sequence, trip_type: str) -> list[EpisodeRequest]:
    if anomalies == "default":
        return default_requests(OBSERVABLE_TYPES[trip_type])
    if anomalies == "none":
        return []
    if isinstance(anomalies, str) or not isinstance(anomalies, Sequence):
        raise ValueError(f"anomalies: expected 'default', 'none' or a list of episodes, got {anomalies!r}")
    requests = [EpisodeRequest.coerce(item) for item in anomalies]
    for request in requests:
        if request.type in EPISODE_TYPES and request.type not in OBSERVABLE_TYPES[trip_type]:
            raise ValueError(f"anomalies: {trip_type} records have no column a {request.type} would show in")
    return requests
