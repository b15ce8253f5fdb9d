"""Images pinned to full versions and agreeing with requirements.lock; the Airflow image; the Spark RBAC.

Static checks (no Docker, no cluster here): what the builds and the API server would take.
"""

from __future__ import annotations

import re
import shlex

from tests.deploy.deployment import (
    HELM_VALUES,
    METASTORE_DOCKERFILE,
    REPO,
    SPARK_DOCKERFILE,
    dockerfile_args,
    dockerfile_instructions,
    manifest,
    manifests,
    values,
)
from tests.deploy.test_spark_image import lock_pins

AIRFLOW_DOCKERFILE = REPO / "images" / "airflow" / "Dockerfile"
# A tag naming a full version: digits.digits.digits somewhere (16.15-bookworm is a full PostgreSQL version).
FULL_VERSION = re.compile(r":(\d+\.\d+(\.\d+)?)[-\w.]*(@sha256:[0-9a-f]{64})?$")


def base_images(path) -> list[str]:
    args = dockerfile_args(path)
    found = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            image = rest.split()[0]
            found.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return found


def manifest_images() -> list[str]:
    return [
        container["image"]
        for document in manifests()
        if document.get("kind") in ("Deployment", "StatefulSet", "Job")
        for container in document["spec"]["template"]["spec"].get("containers", [])
    ]


def test_every_image_is_pinned_to_a_full_version():
    images = [
        *base_images(SPARK_DOCKERFILE),
        *base_images(METASTORE_DOCKERFILE),
        *base_images(AIRFLOW_DOCKERFILE),
        *manifest_images(),
    ]
    loose = [image for image in images if not FULL_VERSION.search(image)]
    assert images and loose == [], f"images without a full version: {loose}"
    postgres = manifest("StatefulSet", "tap-postgresql")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"postgres:16\.\d+-bookworm", postgres)


def test_the_spark_base_is_python_3_11_like_the_venv_and_spark_comes_from_the_locked_pyspark():
    python_base = base_images(SPARK_DOCKERFILE)[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", python_base)
    # Spark itself is pyspark's (the lock); the official image provides only the entrypoint scripts.
    assert lock_pins()["pyspark"] == "4.1.3"
    assert "pyspark" in dockerfile_args(SPARK_DOCKERFILE)["SPARK_JOB_PACKAGES"].split()


def test_the_airflow_image_is_the_locked_airflow_with_exactly_the_lock():
    pins = lock_pins()
    (image,) = base_images(AIRFLOW_DOCKERFILE)
    assert image == f"apache/airflow:{pins['apache-airflow']}-python3.11"
    assert "apache-airflow-providers-fab" in pins  # the auth manager helm-values/airflow.yaml selects
    instructions = dockerfile_instructions(AIRFLOW_DOCKERFILE)
    assert ("COPY", "requirements.lock /tmp/requirements.lock") in instructions
    runs = [shlex.split(rest) for keyword, rest in instructions if keyword == "RUN"]
    assert any(
        words[:3] == ["pip", "install", "--no-cache-dir"]
        and "--no-deps" in words
        and words[-2:] == ["-r", "/tmp/requirements.lock"]
        for words in runs
    ), runs
    ignore = (AIRFLOW_DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert ignore == ["*", "!requirements.lock"]
    airflow = values("airflow")
    assert airflow["airflowVersion"] == pins["apache-airflow"]
    assert airflow["defaultAirflowTag"].startswith(f"{pins['apache-airflow']}-tap-")


def test_the_spark_launcher_role_may_patch_pods():
    role = manifest("Role", "tap-airflow-spark-launcher")
    pod_rules = [rule for rule in role["rules"] if "pods" in rule["resources"]]
    assert pod_rules and {"get", "list", "watch", "patch", "delete"} <= set(pod_rules[0]["verbs"])


def test_helm_values_pin_no_floating_image_tag():
    floating = {"latest", "stable", ""}
    for chart in ("superset", "trino"):
        image = values(chart)["image"]
        assert str(image.get("tag", "")) not in floating, chart
    assert (HELM_VALUES / "airflow.yaml").exists()
