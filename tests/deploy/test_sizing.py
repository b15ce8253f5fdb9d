"""The guide's sizing table adds up the requests actually set in the values files, manifests and template."""

from __future__ import annotations

import re

from tests.deploy.deployment import DEPLOY_GUIDE, SPARK_TEMPLATE, kafka_objects, manifest, values

UNITS = {"Mi": 1 / 1024, "Gi": 1.0, "m": 1 / 1024, "g": 1.0}


def cpu(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def gib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi|m|g)", quantity).groups()
    return float(number) * UNITS[unit]


def always_on_requests() -> list[dict]:
    airflow, trino, operator = values("airflow"), values("trino"), values("spark-operator")
    (kafka,), (pool,) = kafka_objects("Kafka"), kafka_objects("KafkaNodePool")
    containers = [
        manifest("StatefulSet", "tap-postgresql")["spec"]["template"]["spec"]["containers"][0]["resources"],
        manifest("Deployment", "tap-metastore")["spec"]["template"]["spec"]["containers"][0]["resources"],
        values("minio")["resources"],
        operator["controller"]["resources"],
        operator["webhook"]["resources"],
        trino["coordinator"]["resources"],
        *[trino["worker"]["resources"]] * trino["server"]["workers"],
        values("superset")["supersetNode"]["resources"],
        *(airflow[component]["resources"] for component in ("scheduler", "apiServer", "dagProcessor", "triggerer")),
        values("strimzi")["resources"],
        *[pool["spec"]["resources"]] * pool["spec"]["replicas"],
        kafka["spec"]["entityOperator"]["topicOperator"]["resources"],
        kafka["spec"]["entityOperator"]["userOperator"]["resources"],
    ]
    return [c["requests"] for c in containers]


def spark_job_requests() -> tuple[float, float]:
    """Defaults of the SparkApplication template: cores and memory + overhead of driver and executors."""
    text = SPARK_TEMPLATE.read_text()

    def default(name: str) -> str:
        return re.search(rf"params\.get\('{name}', '?([^')]+)'?\)", text).group(1)

    overheads = re.findall(r"memoryOverhead: (\S+)", text)
    instances = int(default("executor_instances"))
    cores = int(default("driver_cores")) + instances * int(default("executor_cores"))
    memory = gib(default("driver_memory")) + gib(overheads[0])
    memory += instances * (gib(default("executor_memory")) + gib(overheads[1]))
    return cores, memory


def table_row(label: str) -> list[str]:
    row = next(line for line in DEPLOY_GUIDE.read_text().splitlines() if line.startswith(f"| **{label}**"))
    return [cell.strip(" *~") for cell in row.strip("|").split("|")]


def test_always_on_totals_match_the_deployment():
    requests = always_on_requests()
    total_cpu = sum(cpu(r["cpu"]) for r in requests)
    total_memory = sum(gib(r["memory"]) for r in requests)
    _, _, cpu_cell, memory_cell, _ = table_row("always on")
    assert round(total_cpu, 2) == float(cpu_cell)
    assert round(total_memory, 1) == float(memory_cell.removesuffix("Gi"))


def test_peak_adds_one_spark_job_with_the_template_defaults():
    requests = always_on_requests()
    job_cpu, job_memory = spark_job_requests()
    peak_cpu = sum(cpu(r["cpu"]) for r in requests) + job_cpu
    peak_memory = sum(gib(r["memory"]) for r in requests) + job_memory
    _, _, cpu_cell, memory_cell, _ = table_row("peak")
    assert round(peak_cpu, 2) == float(cpu_cell)
    assert round(peak_memory, 1) == float(memory_cell.removesuffix("Gi"))
