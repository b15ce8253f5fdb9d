"""Model promotion: compare a candidate with the promoted model on the same month, promote only if not worse.

Both are evaluated by the Spark job on the evaluation month (table model_evaluations, one row per version, month
and run). Where the month is labelled (a labels file in the raw bucket's labels/ tree, e.g. generated months),
the comparison is on the labels: the candidate must find at least as many episodes and have a bucket F1 no more
than `tolerance` below the incumbent's. Real TLC months carry no labels, so there the comparison is on
calibration: a model flags some share of its training windows (its expected share); on a new month a model that
still fits the city flags about that share, while a stale or broken model flags far more (alert storm) or nothing
(blind). calibration_error = |flagged share on the evaluation month - expected share|; the candidate is promoted
when its error is at most the incumbent's + tolerance. The families may differ (champion / challenger).

The pointer is taxi_anomaly.layout.POINTER beside the versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

# The columns of model_evaluations a decision reads (spark_jobs/anomaly_detection/tables.py has the whole schema).
EVALUATION_COLUMNS = (
    "model_version",
    "family",
    "detector",
    "month",
    "windows",
    "anomalies",
    "expected_share",
    "labelled",
    "bucket_precision",
    "bucket_recall",
    "bucket_f1",
    "episodes",
    "episodes_found",
)


@dataclass(frozen=True)
class Evaluation:
    """One model version's result on the evaluation month.

    :param version: registry version.
    :param month: the evaluation month.
    :param windows: windows scored.
    :param anomalies: windows flagged.
    :param expected_share: the share of its training windows the model flags.
    :param family: the detector family.
    :param detector: the model spec's name.
    :param labelled: the month has labelled episodes (the fields below are set).
    :param bucket_f1: bucket F1 against the labels (precision and recall beside it).
    :param episodes: labelled episodes in the month.
    :param episodes_found: episodes with at least one flagged window.
    """

    version: str
    month: str
    windows: int
    anomalies: int
    expected_share: float
    family: str = ""
    detector: str = ""
    labelled: bool = False
    bucket_precision: float | None = None
    bucket_recall: float | None = None
    bucket_f1: float | None = None
    episodes: int | None = None
    episodes_found: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Evaluation:
        values = {k: row[k] for k in EVALUATION_COLUMNS}
        return cls(version=values.pop("model_version"), **values)

    @property
    def flagged_share(self) -> float:
        return self.anomalies / self.windows if self.windows else 0.0

    @property
    def calibration_error(self) -> float:
        return abs(self.flagged_share - self.expected_share)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "flagged_share": round(self.flagged_share, 6),
            "calibration_error": round(self.calibration_error, 6),
        }


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    candidate: Evaluation
    incumbent: Evaluation | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "candidate": self.candidate.as_dict(),
            "incumbent": self.incumbent.as_dict() if self.incumbent else None,
        }


def decide(candidate: Evaluation, incumbent: Evaluation | None, tolerance: float) -> Decision:
    """Promote the candidate unless it is worse than the incumbent by more than `tolerance`."""
    if candidate.windows == 0:
        return Decision(False, f"candidate {candidate.version} scored no window of {candidate.month}", candidate, None)
    if incumbent is None:
        return Decision(True, "no promoted model yet", candidate, None)
    if incumbent.month != candidate.month:
        raise ValueError(f"models evaluated on different months: {candidate.month} vs {incumbent.month}")
    names = f"candidate {candidate.version} ({candidate.detector}), promoted {incumbent.version} ({incumbent.detector})"
    if candidate.labelled and incumbent.labelled:
        c_f1, i_f1 = candidate.bucket_f1 or 0.0, incumbent.bucket_f1 or 0.0
        c_found, i_found = candidate.episodes_found or 0, incumbent.episodes_found or 0
        facts = (
            f"labelled {candidate.month}: {names}; bucket F1 {c_f1:.3f} vs {i_f1:.3f}, episodes found "
            f"{c_found} vs {i_found} of {candidate.episodes}, tolerance {tolerance}"
        )
        if c_found < i_found:
            return Decision(False, f"worse: finds fewer episodes; {facts}", candidate, incumbent)
        if c_f1 >= i_f1 - tolerance:
            return Decision(True, f"not worse: {facts}", candidate, incumbent)
        return Decision(False, f"worse: {facts}", candidate, incumbent)
    limit = incumbent.calibration_error + tolerance
    facts = (
        f"calibration error on {candidate.month}: {names}; {candidate.calibration_error:.4f} "
        f"(flags {candidate.flagged_share:.2%}, expected {candidate.expected_share:.2%}) vs "
        f"{incumbent.calibration_error:.4f} (flags {incumbent.flagged_share:.2%}, expected "
        f"{incumbent.expected_share:.2%}), tolerance {tolerance}"
    )
    if candidate.calibration_error <= limit:
        return Decision(True, f"not worse: {facts}", candidate, incumbent)
    return Decision(False, f"worse: {facts}", candidate, incumbent)


def pointer_document(decision: Decision, previous: dict[str, Any] | None, run_id: str) -> dict[str, Any]:
    """The new promoted.json (call only when decision.promote)."""
    return {
        "version": decision.candidate.version,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "reason": decision.reason,
        "evaluation": decision.as_dict(),
        "previous": (previous or {}).get("version"),
    }
