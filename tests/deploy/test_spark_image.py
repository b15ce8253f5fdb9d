"""images/spark/Dockerfile and helm-values/hive-metastore/Dockerfile, checked statically.

No Docker here: these tests stand in for the build by checking what the build would take. The jars must be the
pinned artifacts of the local platform, the Python packages the requirements.lock versions (a closed set, since
they are installed with --no-deps), the copied paths the ones the SparkApplication refers to.
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from local_platform import artifacts
from tests.deploy.deployment import (
    METASTORE_DOCKERFILE,
    REPO,
    SPARK_DOCKERFILE,
    SPARK_TEMPLATE,
    dockerfile_args,
    dockerfile_instructions,
    naming,
)

LOCK = REPO / "requirements.lock"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def job_packages() -> list[str]:
    return dockerfile_args(SPARK_DOCKERFILE)["SPARK_JOB_PACKAGES"].split()


def remote_adds(path) -> dict[str, str]:
    """URL -> sha256 of every `ADD --checksum=sha256:<hex> <url> <dest>`."""
    adds = {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "ADD":
            words = shlex.split(rest)
            checksum = next((w.split("sha256:", 1)[1] for w in words if w.startswith("--checksum=")), None)
            urls = [w for w in words if w.startswith("https://")]
            assert len(urls) == 1 and checksum, f"ADD without a single URL and a checksum: {rest}"
            adds[urls[0]] = checksum
    return adds


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], text)


def test_jars_are_the_local_platforms_pinned_artifacts():
    """The Iceberg/S3 jars of the batch job and Spark's Kafka connector of the streaming job, same pins as locally."""
    adds = remote_adds(SPARK_DOCKERFILE)
    expected = {
        a.url.replace(artifacts.MAVEN_CENTRAL, "https://repo1.maven.org/maven2"): a.sha256
        for a in artifacts.SPARK_JARS + artifacts.SPARK_KAFKA_JARS
    }
    assert adds == expected
    names = {url.rsplit("/", 1)[1] for url in adds}
    assert {
        f"iceberg-spark-runtime-4.1_2.13-{artifacts.ICEBERG_VERSION}.jar",
        f"iceberg-aws-bundle-{artifacts.ICEBERG_VERSION}.jar",
        f"hadoop-aws-{artifacts.HADOOP_VERSION}.jar",
        f"s3-transfer-manager-{artifacts.AWS_SDK_VERSION}.jar",
        "spark-sql-kafka-0-10_2.13-4.1.3.jar",
        "spark-token-provider-kafka-0-10_2.13-4.1.1.jar",
        "kafka-clients-3.9.1.jar",
        "commons-pool2-2.12.1.jar",
    } == names


def test_kafka_connector_matches_the_images_spark():
    """spark-sql-kafka must be the Spark version of the image (pyspark in the lock); its token provider is the
    newest release of the same minor line on Maven Central (artifacts.py)."""
    spark = lock_pins()["pyspark"]
    by_artifact = {a.artifact: a.version for a in artifacts.SPARK_KAFKA_JARS}
    assert by_artifact["spark-sql-kafka-0-10_2.13"] == spark
    assert by_artifact["spark-token-provider-kafka-0-10_2.13"].rsplit(".", 1)[0] == spark.rsplit(".", 1)[0]


def test_jars_land_on_sparks_own_classpath():
    for keyword, rest in dockerfile_instructions(SPARK_DOCKERFILE):
        if keyword == "ADD":
            assert shlex.split(rest)[-1] == "${SPARK_HOME}/jars/"
    envs = " ".join(rest for keyword, rest in dockerfile_instructions(SPARK_DOCKERFILE) if keyword == "ENV")
    assert "SPARK_HOME=${PYTHON_SITE}/pyspark" in envs
    assert "PYTHON_SITE=/usr/local/lib/python3.11/site-packages" in envs


def test_python_packages_are_pinned_in_the_lock():
    pins = lock_pins()
    missing = [name for name in job_packages() if name.lower() not in pins]
    assert missing == [], f"not in requirements.lock: {missing}"
    assert "pyspark" in job_packages() and "pyspark-client" not in job_packages(), (
        "pyspark-client writes the same files as pyspark; the image needs pyspark only"
    )
    assert pins["pyspark"] == "4.1.3"


def test_python_packages_are_a_closed_set():
    """Installed with --no-deps: every runtime dependency of a listed package must be listed too. The
    dependency metadata is read from the local venv, which holds the same versions (tests/platform checks)."""
    listed = {name.lower() for name in job_packages()}
    missing = {}
    for name in listed:
        for requirement in metadata.requires(name) or []:
            req = Requirement(requirement)
            if req.marker is not None and not req.marker.evaluate({"extra": "", "python_version": "3.11"}):
                continue
            if req.name.lower() not in listed:
                missing.setdefault(name, []).append(req.name)
    assert missing == {}, f"dependencies missing from SPARK_JOB_PACKAGES: {missing}"


def test_the_job_records_only_installed_libraries():
    """The model registry writes the versions of these libraries next to each model (registry.py)."""
    registry = (REPO / "spark_jobs" / "anomaly_detection" / "registry.py").read_text()
    libraries = re.search(r"LIBRARIES = \(([^)]*)\)", registry).group(1)
    recorded = {name.strip().strip('"') for name in libraries.split(",") if name.strip()}
    assert recorded <= {name.lower() for name in job_packages()}


def test_base_image_is_the_projects_python():
    froms = [rest for keyword, rest in dockerfile_instructions(SPARK_DOCKERFILE) if keyword == "FROM"]
    assert froms[-1] == "python:3.11.16-slim-bookworm"
    requires = re.search(r'requires-python = "([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert ">=3.11" in requires and "<3.12" in requires


def copies(path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context."""
    pairs = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, dest = shlex.split(rest)
            pairs.extend((src, dest) for src in sources)
    return pairs


def test_job_files_are_copied_where_the_sparkapplication_runs_them():
    pairs = dict(copies(SPARK_DOCKERFILE))
    main_file = naming()["spark_image"]["main_application_file"]
    assert pairs["spark_jobs/run_anomaly_detection.py"] == main_file.removeprefix("local://")
    stream_file = naming()["spark_image"]["stream_application_file"]
    assert pairs["spark_jobs/run_stream_scoring.py"] == stream_file.removeprefix("local://")
    assert f"mainApplicationFile: {main_file}" in SPARK_TEMPLATE.read_text()
    root = naming()["spark_image"]["app_root"]
    assert pairs["spark_jobs/anomaly_detection/"] == f"{root}/spark_jobs/anomaly_detection/"
    assert pairs["plugins/taxi_anomaly/"] == f"{root}/taxi_anomaly/"
    envs = " ".join(rest for keyword, rest in dockerfile_instructions(SPARK_DOCKERFILE) if keyword == "ENV")
    assert f"PYTHONPATH={root}:{root}/spark_jobs" in envs, "taxi_anomaly and anomaly_detection must import"


@pytest.mark.parametrize("source", [src for src, _ in copies(SPARK_DOCKERFILE)])
def test_copied_paths_exist_and_pass_the_ignore_file(source):
    assert (REPO / source).exists(), f"COPY source {source} is not in the repository"
    ignore = (SPARK_DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert f"!{source}" in ignore, f"{source} is excluded from the build context"


def test_requirements_lock_passes_the_ignore_file():
    ignore = (SPARK_DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :].count("!requirements.lock") == 1


def test_entrypoint_comes_from_the_official_spark_image():
    copies_from = [
        rest
        for keyword, rest in dockerfile_instructions(SPARK_DOCKERFILE)
        if keyword == "COPY" and rest.startswith("--from")
    ]
    assert copies_from == ["--from=spark-entrypoint /opt/entrypoint.sh /opt/decom.sh /opt/"]
    instructions = dockerfile_instructions(SPARK_DOCKERFILE)
    assert ("ENTRYPOINT", '["/opt/entrypoint.sh"]') in instructions
    assert dockerfile_args(SPARK_DOCKERFILE)["SPARK_ENTRYPOINT_IMAGE"].startswith("spark:4.1.")
    assert ("USER", "${SPARK_UID}") in instructions and dockerfile_args(SPARK_DOCKERFILE)["SPARK_UID"] == "185"


def test_metastore_image_is_hive_4_0_0_with_a_pinned_jdbc_driver():
    args = dockerfile_args(METASTORE_DOCKERFILE)
    assert args["HIVE_IMAGE"] == "apache/hive:4.0.0", "4.0.1 breaks Iceberg writes ('Invalid method name: get_table')"
    adds = {expand(url, args): expand(sha, args) for url, sha in remote_adds(METASTORE_DOCKERFILE).items()}
    version = args["PGJDBC_VERSION"]
    url = f"https://repo1.maven.org/maven2/org/postgresql/postgresql/{version}/postgresql-{version}.jar"
    assert adds == {url: args["PGJDBC_SHA256"]}
    assert re.fullmatch(r"[0-9a-f]{64}", args["PGJDBC_SHA256"])
