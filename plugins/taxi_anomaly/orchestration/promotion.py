"""Model promotion: compare a candidate with the promoted model on the same month, promote only if not worse.

No labels exist for real TLC months, so the comparison is on calibration: a model's threshold is set so that
`contamination` of its training windows lie above it; on a new month a model that still fits the city flags
about that share, while a stale or broken model flags far more (alert storm) or nothing (blind). The metric is
calibration_error = |flagged share on the evaluation month - the model's contamination|. The candidate is
promoted when there is no promoted model yet, or when its error is at most the promoted model's + tolerance.

The pointer is `{models root}/{trip_type}/{granularity}/promoted.json` in the models bucket (beside the
versions; the registry lists directories only, so it never mistakes it for a version).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

POINTER = "promoted.json"


@dataclass(frozen=True)
class Evaluation:
    """One model's result on the evaluation month.

    :param version: registry version.
    :param month: the evaluation month.
    :param windows: windows scored.
    :param anomalies: windows flagged.
    :param contamination: the share the model was trained to flag.
    :param mean_score: mean anomaly score of the month's windows (for the record).
    """

    version: str
    month: str
    windows: int
    anomalies: int
    contamination: float
    mean_score: float | None = None

    @property
    def flagged_share(self) -> float:
        return self.anomalies / self.windows if self.windows else 0.0

    @property
    def calibration_error(self) -> float:
        return abs(self.flagged_share - self.contamination)

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
    limit = incumbent.calibration_error + tolerance
    facts = (
        f"calibration error on {candidate.month}: candidate {candidate.calibration_error:.4f} "
        f"(flags {candidate.flagged_share:.2%}, target {candidate.contamination:.2%}), "
        f"promoted {incumbent.version} {incumbent.calibration_error:.4f} "
        f"(flags {incumbent.flagged_share:.2%}, target {incumbent.contamination:.2%}), tolerance {tolerance}"
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
