"""The KDD Cup 99 connection records: column names, attack categories, the file reader and the event schema.

The 10% training file (kddcup.data_10_percent.gz, 494,021 rows) is a CSV without header: 41 features, then the
label with a trailing dot ("normal.", "smurf."). Attacks are about 80 % of its rows (smurf and neptune alone
78 %), so a detector fitted on all rows learns those attacks as the usual traffic: per-event detectors are fitted
on normal rows only (`normal_training_split`), and the labels serve only to pick those rows and to evaluate.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql.types import StructType

FEATURE_SET = "kddcup99"  # the registry's name (its trip_type) for per-event models of these records
FILE_NAME = "kddcup.data_10_percent.gz"

# The 41 features in file order (the names of the KDD Cup 99 task description); the label follows them.
KDD_COLUMNS: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment", "urgent",
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login",
    "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate", "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
SYMBOLIC = ("protocol_type", "service", "flag")
NUMERIC = tuple(c for c in KDD_COLUMNS if c not in SYMBOLIC)
LABEL = "label"  # without the file's trailing dot: "normal", "smurf", ...
CATEGORY = "category"
NORMAL = "normal"

# The KDD Cup 99 task description's four attack categories (the training data's 22 attack types).
ATTACK_CATEGORIES: dict[str, str] = {
    NORMAL: NORMAL,
    **dict.fromkeys(("back", "land", "neptune", "pod", "smurf", "teardrop"), "dos"),
    **dict.fromkeys(("ipsweep", "nmap", "portsweep", "satan"), "probe"),
    **dict.fromkeys(
        ("ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy", "warezclient", "warezmaster"), "r2l"
    ),
    **dict.fromkeys(("buffer_overflow", "loadmodule", "perl", "rootkit"), "u2r"),
}


def default_file() -> Path:
    """The 10% file in the shared data directory (TAP_SHARED_DATA_DIR, else ../shared/data)."""
    from taxi_anomaly.ingest.settings import shared_data_dir

    return shared_data_dir() / "kddcup99" / FILE_NAME


def read_kdd(
    path: str | os.PathLike[str] | IO[bytes],
    *,
    compression: Literal["infer", "gzip"] | None = "infer",
    nrows: int | None = None,
) -> pd.DataFrame:
    """The records of a KDD Cup 99 file (gzip or plain CSV without header, 42 fields a row) with KDD_COLUMNS,
    `label` (without the trailing dot) and `category`; numeric columns float64, symbolic ones str.

    Memory: the 10% file (494,021 rows) takes about 250 MB as this frame (38 float64 columns, 5 of str)."""
    import pandas as pd

    names = [*KDD_COLUMNS, LABEL]
    dtypes: dict[Hashable, str] = {c: ("str" if c in SYMBOLIC or c == LABEL else "float64") for c in names}
    where = path if isinstance(path, str | os.PathLike) else "the KDD input"
    try:
        frame = pd.read_csv(path, header=None, names=names, dtype=dtypes, compression=compression, nrows=nrows)
    except ValueError as err:  # a field that is not a number where one is expected
        raise ValueError(f"{where}: not a KDD Cup 99 file ({err})") from None
    if frame[LABEL].isna().any():
        raise ValueError(f"{where}: rows with fewer than {len(names)} fields (41 features and the label)")
    frame[LABEL] = frame[LABEL].str.rstrip(".")
    unknown = sorted(set(frame[LABEL].unique()) - set(ATTACK_CATEGORIES))
    if unknown:
        raise ValueError(f"{where}: labels not in ATTACK_CATEGORIES: {', '.join(unknown[:10])}")
    frame[CATEGORY] = frame[LABEL].map(ATTACK_CATEGORIES)
    return frame


def normal_training_split(
    records: pd.DataFrame, *, seed: int, train_share: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, evaluation): a random `train_share` of the normal rows to fit on, and the rest of the rows (the
    other normal rows and every attack) to evaluate on."""
    import numpy as np

    if not 0.0 < train_share < 1.0:
        raise ValueError(f"train_share must be between 0 and 1 (exclusive), got {train_share!r}")
    normal = np.flatnonzero((records[LABEL] == NORMAL).to_numpy())
    if not len(normal):
        raise ValueError(f"records: no row labelled {NORMAL!r} to train on")
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(records), dtype=bool)
    chosen[rng.choice(normal, size=max(1, int(len(normal) * train_share)), replace=False)] = True
    return records[chosen].reset_index(drop=True), records[~chosen].reset_index(drop=True)


def record_schema() -> StructType:
    """The fields of one connection record as they arrive in a JSON event's `record` object (all nullable)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    return StructType(
        [StructField(c, StringType() if c in SYMBOLIC else DoubleType(), nullable=True) for c in KDD_COLUMNS]
    )
