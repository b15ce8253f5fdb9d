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
import uuid
from pathlib import Path
from typing import Any

from bench.bench_backfill import FIRST_MONTH, HISTORY_MONTHS, PREFIX, job_result, months_from, write_results
from bench.bench_month_scaling import SCALING_NAMESPACE

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "job_versions.json"


def run_tree(tree: Path, month: str, version: str, granularity: str) -> dict[str, Any]:
    """The job of the source tree `tree` (its spark_jobs and plugins) in score mode on `month`."""
    from local_platform.config import load_config
    from local_platform.spark import spark_env
    from taxi_anomaly.contract import Mode
    from taxi_anomaly.orchestration.locations import Locations

    job = Locations(prefix=PREFIX).job(
        trip_type="fhvhv",
        granularity=granularity,
        mode=Mode.SCORE,
        score_months=(month,),
        namespace=SCALING_NAMESPACE,
        run_id=f"bench_versions_{uuid.uuid4().hex[:8]}",
        model_version=version,
    )
    env = {**os.environ, **spark_env(load_config())}
    env["PYTHONPATH"] = os.pathsep.join(str(tree / d) for d in ("spark_jobs", "plugins"))
    started = time.monotonic()
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), str(tree / "spark_jobs" / "run_anomaly_detection.py"), *job.to_argv()],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"the job of {tree} failed:\n{done.stderr[-3000:]}")
    result = next(found for line in done.stdout.splitlines() if (found := job_result(line)))
    large = sum("contains a task of very large size" in line for line in done.stderr.splitlines())
    return {
        "wall_s": round(wall, 1),
        "timings_s": {k: round(v, 1) for k, v in result["timings_s"].items()},
        "oversized_task_warnings": large,
    }


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
                runs["base"].append(run_tree(worktree, month, version, args.granularity))
                runs["head"].append(run_tree(REPO, month, version, args.granularity))
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
