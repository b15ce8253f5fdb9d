#!/usr/bin/env bash
# Builds the two virtualenvs from the lock files with uv; does nothing when a venv already matches its lock.
#   .venv           requirements.lock                  (Airflow, pyspark, sklearn, GX, clients, pytest)
#   .venv-superset  include/superset/requirements.lock (Superset pins SQLAlchemy < 2)
# uv's cache (~/.cache/uv) keeps the wheels, including the locally built pyspark wheel (~450 MB).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
if ! command -v uv >/dev/null || [[ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]]; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

sync_venv() {  # sync_venv DIR LOCKFILE
  local dir=$1 lock=$2 stamp="$1/.lock.sha256" want
  want=$(sha256sum "$lock" | awk '{print $1}')
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  [[ -x "$dir/bin/python" ]] || uv venv --quiet --python 3.11 "$dir"
  uv pip sync --quiet --python "$dir/bin/python" "$lock"
  echo "$want" > "$stamp"
}

sync_venv .venv requirements.lock
sync_venv .venv-superset include/superset/requirements.lock
