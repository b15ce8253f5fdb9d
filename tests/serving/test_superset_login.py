"""Superset's logins: failed ones are throttled per user (include/superset/superset_config.py), others unaffected."""

from __future__ import annotations

import uuid

import pytest

from taxi_anomaly.serving.superset_client import SupersetClient, SupersetError

pytestmark = pytest.mark.platform


def login_status(platform, user: str, password: str) -> int:
    try:
        SupersetClient(platform.cfg.superset_url, user, password).session  # noqa: B018 - logging in is the call
    except SupersetError as err:
        return err.status or 0
    return 200


def test_failed_rest_logins_are_throttled_per_user(platform):
    target = f"nobody-{uuid.uuid4().hex[:6]}"
    statuses = [login_status(platform, target, f"guess-{i}") for i in range(7)]
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429, 429], statuses
    creds = platform.creds
    assert login_status(platform, creds.superset_admin_user, creds.superset_admin_password) == 200
