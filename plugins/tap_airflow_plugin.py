"""The platform's Airflow plugin: the failed-login throttle of the REST token endpoints, around the API server.

Settings (Airflow config, e.g. AIRFLOW__TAP__LOGIN_MAX_FAILURES): [tap] login_max_failures (default 5) and
login_window_seconds (default 60). See taxi_anomaly/orchestration/login_throttle.py.
"""

from __future__ import annotations

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from taxi_anomaly.orchestration.login_throttle import LoginThrottle


class TapPlatformPlugin(AirflowPlugin):
    name = "taxi_anomaly_platform"
    fastapi_root_middlewares = [
        {
            "middleware": LoginThrottle,
            "args": [],
            "kwargs": {
                "max_failures": conf.getint("tap", "login_max_failures", fallback=5),
                "window_s": conf.getfloat("tap", "login_window_seconds", fallback=60.0),
            },
            "name": "tap-login-throttle",
        }
    ]
