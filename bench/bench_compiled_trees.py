"""Per-event scoring of an IsolationForest in Spark: the forest compiled into native Column expressions
(anomaly_detection.compiled_trees) against a pandas UDF calling model.score_samples, on the same rows.

For each forest size: the expression's size (CASE WHEN splits, characters), the time to build it in Python,
Spark's analysis and planning time, the time to the first row of a 10-row DataFrame (plan, code generation,
execution) with whole-stage codegen on (the default) and off, and full scans of the rows
(`select(score).agg(sum)`): the first one (which compiles that query's code) and the best of `--repeat` more,
in rows/s, with CPU seconds of the whole process tree (driver JVM, Python workers). The JVM's log goes to a file
next to the JSON (.jvm.tmp); its code-generation warnings (64 KB limit, whole-stage fallback) are counted per step.

Rows: the KDD Cup 99 10% file's 38 numeric columns (494,021 rows, tiled up to --rows), cached in memory; forests
fitted on 50,000 of them with sklearn's defaults (max_samples 256).

    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_compiled_trees --rows 1000000 --trees 10,100,200
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import bench_spark_job
from taxi_anomaly.ingest.settings import shared_data_dir

KDD = shared_data_dir() / "kddcup99" / "kddcup.data_10_percent.gz"
# JVM log lines about code generation: Janino's 64 KB method limit, whole-stage codegen giving up on a plan, and
# Spark's own check of the compiled size against spark.sql.codegen.hugeMethodLimit.
LOG_PATTERNS = {
    "grows_beyond_64KB": r"grows beyond 64 KB",
    "whole_stage_disabled": r"Whole-stage codegen disabled",
    "too_long_hugeMethodLimit": r"too long generated codes|hugeMethodLimit",
    "failed_to_compile": r"Failed to compile the generated Java code",
    "large_task_binary": r"Broadcasting large task binary",
}


class JvmLog:
    """The driver JVM's stderr, sent to a file (the JVM inherits this process's fd 2), read step by step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        terminal = os.dup(2)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 2)
        os.close(log)
        sys.stderr = os.fdopen(terminal, "w", buffering=1)  # this process's own messages still reach the terminal
        self._offset = 0

    def counts(self) -> dict[str, int]:
        """How often each pattern appeared since the last call."""
        with open(self.path, errors="replace") as f:
            f.seek(self._offset)
            text = f.read()
            self._offset = f.tell()
        return {name: len(re.findall(pattern, text)) for name, pattern in LOG_PATTERNS.items()}


def timed(log: JvmLog, fn: Callable[[], Any], rows: int | None = None) -> tuple[dict[str, Any], Any]:
    """Wall and CPU seconds of `fn()` (rows/s if `rows`), the 1-minute load before and after, and the JVM log's
    code-generation warnings meanwhile; and what `fn` returned."""
    result, value = bench_spark_job.measured(fn, rows)
    result["jvm_log"] = {k: v for k, v in log.counts().items() if v}
    return result, value


def kdd_rows(rows: int) -> np.ndarray:
    frame = pd.read_csv(KDD, header=None)
    numeric = frame.drop(columns=[1, 2, 3, 41]).to_numpy(dtype=np.float64)
    return np.resize(numeric, (rows, numeric.shape[1]))  # tiled


class Bench:
    """The measurements of one forest, on the cached rows and a 10-row frame of the same columns."""

    WHOLE_STAGE = "spark.sql.codegen.wholeStage"

    def __init__(self, spark: Any, log: JvmLog, rows: Any, tiny: Any, n_rows: int, repeat: int) -> None:
        self.spark, self.log, self.rows, self.tiny, self.n_rows, self.repeat = spark, log, rows, tiny, n_rows, repeat
        self._run = 0

    def _tagged(self, frame: Any, score: Any) -> Any:
        """The score and a literal unique to this query, so no earlier query's generated code is reused."""
        self._run += 1
        return self._select(frame, score, self._run)

    @staticmethod
    def _select(frame: Any, score: Any, run: int) -> Any:
        from pyspark.sql import functions as F

        return frame.select(score.alias("s"), F.lit(run).alias("run"))

    def _whole_stage(self, enabled: bool, fn: Callable[[], Any]) -> Any:
        self.spark.conf.set(self.WHOLE_STAGE, str(enabled).lower())
        try:
            return fn()
        finally:
            self.spark.conf.unset(self.WHOLE_STAGE)

    def first_row(self, score: Any, whole_stage: bool = True) -> dict[str, Any]:
        query = self._tagged(self.tiny, score)
        return self._whole_stage(whole_stage, lambda: timed(self.log, query.collect)[0])

    def full_scans(self, score: Any, whole_stage: bool = True) -> dict[str, Any]:
        """`select(score).agg(sum)` over all rows: the first query, then `repeat` new ones of the same code (a
        new DataFrame each: a second action on the same one would reuse its shuffle output and skip the scan)."""
        from pyspark.sql import functions as F

        self._run += 1

        def scan() -> Any:
            return self._select(self.rows, score, self._run).agg(F.sum("s"), F.max("run")).collect()

        def scans() -> dict[str, Any]:
            first = timed(self.log, scan, self.n_rows)[0]
            repeats = [timed(self.log, scan, self.n_rows)[0] for _ in range(self.repeat)]
            best = min(repeats, key=lambda r: r["seconds"]) if repeats else first
            return {"first": first, "best": best, "runs_s": [r["seconds"] for r in repeats]}

        return self._whole_stage(whole_stage, scans)

    def forest(self, model: Any, names: list[str]) -> dict[str, Any]:
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.functions import pandas_udf

        from anomaly_detection.compiled_trees import isolation_forest_score

        entry: dict[str, Any] = {"trees": len(model.estimators_)}
        entry["tree_nodes"] = int(sum(e.tree_.node_count for e in model.estimators_))
        print(f"--- {entry['trees']} trees ({entry['tree_nodes']:,} nodes)", file=sys.stderr, flush=True)
        compiled: dict[str, Any] = {}
        compiled["build"], score = timed(self.log, lambda: isolation_forest_score(model, names))
        text = str(score)
        entry["case_when_splits"], entry["expression_chars"] = text.count("CASE WHEN"), len(text)
        compiled["analysis"], query = timed(self.log, lambda: self.tiny.select(score.alias("s")))
        compiled["optimize_and_plan"], _ = timed(self.log, query._jdf.queryExecution().executedPlan)
        compiled["first_row"] = self.first_row(score)
        compiled["first_row_whole_stage_off"] = self.first_row(score, whole_stage=False)
        compiled["full_scan"] = self.full_scans(score)
        compiled["full_scan_whole_stage_off"] = self.full_scans(score, whole_stage=False)
        entry["compiled"] = compiled
        print(json.dumps(compiled), file=sys.stderr, flush=True)

        broadcast = self.spark.sparkContext.broadcast(model)

        @pandas_udf("double")  # type: ignore[call-overload, untyped-decorator]  # pyspark's typing of pandas_udf
        def forest_score(features: pd.DataFrame) -> pd.Series:
            return pd.Series(broadcast.value.score_samples(features.to_numpy(dtype=np.float64)))

        udf_score = forest_score(F.struct(*names))
        entry["pandas_udf"] = {"first_row": self.first_row(udf_score), "full_scan": self.full_scans(udf_score)}
        print(json.dumps(entry["pandas_udf"]), file=sys.stderr, flush=True)

        both = self.rows.limit(20_000).select(score.alias("compiled"), udf_score.alias("udf"))
        check = self._whole_stage(False, both.toPandas)
        self.log.counts()
        entry["max_abs_difference_20k_rows"] = float((check["compiled"] - check["udf"]).abs().max())
        return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trees", default="10,100,200", help="forest sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="full scans after the first (the best is kept)")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--out", default="bench/results/compiled_trees.json")
    args = parser.parse_args()
    sizes = [int(n) for n in args.trees.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = JvmLog(out.with_suffix(".jvm.tmp"))  # (bench/results/*.tmp is not committed)

    from local_platform.config import load_config
    from local_platform.spark import spark_env

    os.environ.update(spark_env(load_config()))
    from pyspark.sql import SparkSession
    from sklearn.ensemble import IsolationForest

    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "cpu_count": os.cpu_count(),
        "load_1min_at_start": round(os.getloadavg()[0], 1),
        "rows": args.rows,
        "data": f"{KDD.name}: 38 numeric columns, tiled to {args.rows:,} rows",
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "forests": [],
    }
    x = kdd_rows(args.rows)
    names = [f"f{i}" for i in range(x.shape[1])]
    spark = (
        SparkSession.builder.appName("bench-compiled-trees")
        .master("local[2]")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    results["spark"] = {"version": spark.version, "master": "local[2]", "driver_memory": args.driver_memory}
    rows = spark.createDataFrame(pd.DataFrame(x, columns=names)).repartition(2).cache()
    results["cache_rows"], _ = timed(log, rows.count)
    tiny = spark.createDataFrame(pd.DataFrame(x[:10], columns=names)).cache()
    tiny.count()
    sample = x[np.random.default_rng(0).choice(len(x), size=min(50_000, len(x)), replace=False)]
    bench = Bench(spark, log, rows, tiny, args.rows, args.repeat)
    for n_trees in sizes:
        model = IsolationForest(n_estimators=n_trees, random_state=0).fit(sample)
        results["forests"].append(bench.forest(model, names))
        out.write_text(json.dumps(results, indent=2) + "\n")

    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    spark.stop()


if __name__ == "__main__":
    main()
