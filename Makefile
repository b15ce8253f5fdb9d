# taxi-anomaly-platform: the two commands are `make demo` and `make test`. See README.md.
SHELL := /bin/bash
PY_SYS ?= python3
VENV_PY := .venv/bin/python
PLATFORM := $(PY_SYS) -m local_platform

.PHONY: help setup up down status logs test test-unit lint lock demo clean-state mirror stream-up stream-down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup:  ## install everything (venvs, JVM artifacts, MinIO/mc, credentials); idempotent, seconds when warm
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v openssl >/dev/null && \
	  test -x /usr/lib/postgresql/15/bin/initdb || \
	  { mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver openssl postgresql-15; }
	$(PLATFORM) setup

up: setup  ## start every service on 127.0.0.1 and wait until healthy
	$(PLATFORM) up

down:  ## stop exactly the processes `make up` started
	$(PLATFORM) down

stream-up:  ## start the streaming job (Kafka -> scores -> alerts) with the demo's promoted model
	$(PLATFORM) stream-up

stream-down:  ## stop the streaming job (its checkpoint stays under .platform/data/stream/)
	$(PLATFORM) stream-down

status:  ## each service's health, PIDs and URLs
	$(PLATFORM) status

logs:  ## where the logs are
	$(PLATFORM) logs

lint: setup  ## ruff over the whole tree (dags/ also bans heavy module-level imports), mypy (pyproject.toml)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: setup lint  ## the test suite; starts the platform for the tests that need it and stops it afterwards
	$(VENV_PY) -m pytest

test-unit: setup  ## only the tests that need no running service
	$(VENV_PY) -m pytest -m "not platform"

lock:  ## re-resolve requirements.lock files from requirements.txt files
	uv pip compile requirements.txt --python 3.11 -o requirements.lock
	uv pip compile include/superset/requirements.txt --python 3.11 -o include/superset/requirements.lock

MIRROR_PORT ?= $(shell $(PY_SYS) -c "from local_platform.config import load_config; print(load_config().mirror_port)")
mirror:  ## serve ../shared/data as the TLC CDN on 127.0.0.1:$(MIRROR_PORT) (fault injection under /_mirror/)
	PYTHONPATH=plugins $(VENV_PY) -m taxi_anomaly.ingest.mirror --port $(MIRROR_PORT) --data-dir ../shared/data

demo: up  ## set up and start the platform, run the pipeline through Airflow on sample data, show the results
	bash scripts/demo.sh

clean-state: down  ## delete all local state (data, logs, credentials) — irreversible
	rm -rf .platform
