"""Orchestration: what the DAGs in dags/ call. The DAG files only wire these tasks; the logic lives here.

Modules, one concept each: params (trigger parameters and their JSON schemas), months (which months a run works
on), locations (where a run reads and writes, and the job description built from it; the job's contract itself
is taxi_anomaly.contract), payloads (what tasks hand each other), backends (local spark-submit or a
SparkApplication on Kubernetes, chosen at run time), runtime (connections and Variables, read at run time),
steps (what each task does), promotion (model evaluation and the promoted pointer), alerts (the on-failure
callback), policies (retries and timeouts per kind of task), assets (the raw-zone Assets), tasks (the Airflow
tasks). See docs/orchestration.md.

Importing this package (and `tasks`, which DAG files import) is cheap: no pandas, pyspark, sklearn, pyiceberg or
Great Expectations until a task runs.
"""
