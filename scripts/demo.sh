#!/usr/bin/env bash
# `make demo` after `make up`: runs the pipeline DAGs on the local platform and prints where the results are.
# See plugins/taxi_anomaly/orchestration/demo.py (options: --retrain, --prefix, --data-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(python3 -m local_platform env airflow)"
eval "$(python3 -m local_platform env jupyter)"
exec .venv/bin/python -m taxi_anomaly.orchestration.demo "$@"
