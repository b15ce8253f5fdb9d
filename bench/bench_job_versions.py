"""Benchmark: the job of another commit against this tree's, on the same month and model, in interleaved pairs
(each in its own process, as spark-submit runs it): what a change of the job did, measured in one run.

    make up
    eval "$(python3 -m local_platform env airflow)"
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_backfill     # lands the months, once
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_job_versions --base 6935020 --granularity zone
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_backfill import FIRST_MONTH, HISTORY_MONTHS, PREFIX, months_from, write_results
from bench.bench_month_scaling import REPO, run_job

RESULTS = Path(__file__).parent / "results" / "job_versions.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (a git revision)")
    parser.add_argument("--granularity", choices=("city", "borough", "zone"), default="city")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="default: results/job_versions_<granularity>.json")
    args = parser.parse_args(argv)

    from taxi_anomaly.orchestration import demo

    month = months_from(FIRST_MONTH, HISTORY_MONTHS + 1)[HISTORY_MONTHS]
    version = demo.promoted(PREFIX, "fhvhv", args.granularity)
    if version is None:
        raise SystemExit(f"no promoted fhvhv {args.granularity} model under the bench's prefix")
    base = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=REPO, capture_output=True, text=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory() as folder:
        worktree = Path(folder) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base], cwd=REPO, check=True)
        try:
            for _ in range(args.pairs):
                runs["base"].append(run_job([month], version, args.granularity, source=worktree))
                runs["head"].append(run_job([month], version, args.granularity, source=REPO))
                print(json.dumps({k: v[-1] for k, v in runs.items()}), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
    result = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "granularity": args.granularity,
        "month": month,
        "model_version": version,
        "base": base.stdout.strip(),
        "head": head.stdout.strip(),
        "load_1min_at_end": round(os.getloadavg()[0], 2),
        "median_wall_s": {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()},
        "runs": runs,
    }
    out = args.out or RESULTS.with_name(f"job_versions_{args.granularity}.json")
    write_results(out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
