"""The KDD Cup 1999 connection records (the 10 % file): their columns, the label, and the attack categories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FEATURE_SET = "kddcup99"  # the registry's name of per-event models of these records
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

# Attack -> category (dos, probe, r2l, u2r), as in the KDD Cup 99 task description.
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
    from taxi_anomaly.ingest.settings import shared_data_dir

    return shared_data_dir() / "kddcup99" / FILE_NAME


def read_kdd(path: Path | str, nrows: int | None = None) -> Any:
    """The file as a pandas DataFrame: KDD_COLUMNS (numeric as float64, symbolic as str), label and category.
    An unknown label is an error naming it (the categories above are the task's complete list)."""
    import pandas as pd

    names = [*KDD_COLUMNS, LABEL]
    dtypes = {c: (str if c in SYMBOLIC or c == LABEL else "float64") for c in names}
    frame = pd.read_csv(path, header=None, names=names, dtype=dtypes, nrows=nrows)
    frame[LABEL] = frame[LABEL].str.rstrip(".")
    unknown = sorted(set(frame[LABEL]) - set(ATTACK_CATEGORIES))
    if unknown:
        raise ValueError(f"{path}: labels outside the KDD Cup 99 attack list: {unknown[:10]}")
    frame[CATEGORY] = frame[LABEL].map(ATTACK_CATEGORIES)
    return frame
