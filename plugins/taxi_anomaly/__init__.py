"""taxi_anomaly: the platform's importable business logic (ingestion, features, model, serving clients).

Lives under plugins/ so that every Airflow component has it on sys.path; plugins/.airflowignore keeps
Airflow's plugin loader from executing these modules as plugins.
"""
