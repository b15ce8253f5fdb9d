"""Airflow hook for Superset: a SupersetClient built from an Airflow connection, created on first use only."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from taxi_anomaly.serving.superset_client import SupersetClient


class SupersetHook(BaseHook):
    """Superset's REST API with the credentials of an Airflow connection.

    The connection (conn_type http) gives schema = http|https, host, port, login and password of a Superset
    user allowed to import assets. Nothing is read or sent before `client` is first used.

    :param superset_conn_id: the Airflow connection id.
    """

    conn_name_attr = "superset_conn_id"
    default_conn_name = "tap_superset"
    conn_type = "http"
    hook_name = "Superset"

    def __init__(self, superset_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.superset_conn_id = superset_conn_id

    @cached_property
    def client(self) -> SupersetClient:
        return SupersetClient.from_connection(self.get_connection(self.superset_conn_id))

    def get_conn(self) -> SupersetClient:
        return self.client
