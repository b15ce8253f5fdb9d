"""Where the Spark job runs: spark-submit on this machine, or a SparkApplication on Kubernetes.

One setting chooses, read when the task runs (never when the DAG file is parsed): the Airflow Variable
`tap_platform` (`AIRFLOW_VAR_TAP_PLATFORM`; helm-values/airflow.yaml sets `kubernetes`), `local` when unset.
Both backends take the same `AnomalyJob` (taxi_anomaly.contract) and run the same entry file with its
`to_argv()`; a job that fails fails the task (non-zero exit of spark-submit, failed driver pod), and Airflow's
retries resubmit it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from taxi_anomaly.contract import AnomalyJob

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINT = REPO_ROOT / "spark_jobs" / "run_anomaly_detection.py"
TEMPLATE_SEARCHPATH = REPO_ROOT / "include"
APPLICATION_FILE = "spark/sparkapplication.yaml"

BACKEND_VARIABLE = "tap_platform"
K8S_NAMESPACE_VARIABLE = "tap_k8s_namespace"
LOCAL, KUBERNETES = "local", "kubernetes"
SPARK_LOCAL_CONN_ID = "tap_spark_local"
KUBERNETES_CONN_ID = "tap_kubernetes"
DEFAULT_K8S_NAMESPACE = "taxi-anomaly"


class SparkBackend(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, job: AnomalyJob, context: Mapping[str, Any]) -> None:
        """Run the job to completion; raise if it fails."""


@dataclass(frozen=True)
class LocalSparkSubmit:
    """spark-submit of spark_jobs/run_anomaly_detection.py through the connection tap_spark_local (local[*]).

    The environment comes from the Airflow processes (SPARK_CONF_DIR, PYSPARK_PYTHON, JAVA_HOME, PYTHONPATH:
    local_platform/spark.py spark_env), so the job sees the same catalog and S3 settings as every local Spark.
    """

    conn_id: str = SPARK_LOCAL_CONN_ID
    application: Path = ENTRY_POINT
    name: str = LOCAL

    def command(self, job: AnomalyJob) -> list[str]:
        """What the hook runs (for logs and tests): spark-submit ... <entry file> <job arguments>."""
        return [*self._hook(job)._build_spark_submit_command(str(self.application))]

    def _hook(self, job: AnomalyJob) -> Any:
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        # Spark's own INFO lines would bury the job's log lines in the task log.
        return SparkSubmitHook(
            conn_id=self.conn_id,
            application_args=job.to_argv(),
            name=job.name,
            conf={"spark.log.level": "WARN"},
        )

    def run(self, job: AnomalyJob, context: Mapping[str, Any]) -> None:
        hook = self._hook(job)
        log.info("spark-submit %s %s", self.application, " ".join(job.to_argv()))
        hook.submit(application=str(self.application))


@dataclass(frozen=True)
class KubernetesSparkApplication:
    """A SparkApplication rendered from include/spark/sparkapplication.yaml by SparkKubernetesOperator.

    The template's `params` are the job's (`AnomalyJob.template_params`), not the DAG run's: a mapped task runs one
    job per month, so the operator is built here, at run time, and rendered with a context whose params are the
    job's.
    """

    namespace: str = DEFAULT_K8S_NAMESPACE
    conn_id: str = KUBERNETES_CONN_ID
    name: str = KUBERNETES

    def operator(self, task_id: str) -> Any:
        from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

        return SparkKubernetesOperator(
            task_id=task_id,
            application_file=APPLICATION_FILE,
            namespace=self.namespace,
            kubernetes_conn_id=self.conn_id,
            get_logs=True,
            delete_on_termination=True,
            reattach_on_restart=True,
        )

    def render(self, job: AnomalyJob, context: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The operator with its template rendered for this job (no cluster needed). Returns (operator, ctx)."""
        task = context.get("task")
        operator = self.operator(getattr(task, "task_id", "spark_anomaly_job"))
        job_context = {**context, "params": job.template_params(), "run_id": job.run_id}
        operator.render_template_fields(job_context, jinja_env=_jinja_env(context))
        return operator, job_context

    def run(self, job: AnomalyJob, context: Mapping[str, Any]) -> None:
        operator, job_context = self.render(job, context)
        log.info("SparkApplication %s in namespace %s", operator.template_body["spark"]["metadata"], self.namespace)
        operator.execute(job_context)


def _jinja_env(context: Mapping[str, Any]) -> Any:
    """The DAG's Jinja environment when its template_searchpath is set, else one that finds include/."""
    dag = context.get("dag")
    if dag is not None and getattr(dag, "template_searchpath", None):
        return dag.get_template_env()
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(TEMPLATE_SEARCHPATH)), autoescape=False)  # noqa: S701


def choose_backend(setting: str | None = None) -> SparkBackend:
    """The backend named by `setting`, else by the Variable tap_platform (read now), else local."""
    if setting is None:
        from airflow.sdk import Variable

        setting = Variable.get(BACKEND_VARIABLE, default=LOCAL)
    value = (setting or LOCAL).strip().lower()
    if value == LOCAL:
        return LocalSparkSubmit()
    if value == KUBERNETES:
        from airflow.sdk import Variable

        return KubernetesSparkApplication(namespace=Variable.get(K8S_NAMESPACE_VARIABLE, default=DEFAULT_K8S_NAMESPACE))
    raise ValueError(f"Airflow Variable {BACKEND_VARIABLE} must be '{LOCAL}' or '{KUBERNETES}', got {setting!r}")
