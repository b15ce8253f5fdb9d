"""The OPA service Trino asks: it serves only clients with a certificate of the install, and each only what it needs."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from local_platform.services.opa import OpaService, opa_url
from local_platform.tls import CertificateAuthority

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def opa(platform) -> Iterator[OpaService]:
    """The platform's OPA (started here, and stopped again, when the platform runs the file rules)."""
    service = OpaService(platform.cfg, platform.creds)
    was_running = service.is_running()
    service.start()
    yield service
    if not was_running:
        service.stop()


def _call(opa: OpaService, path: str, context: ssl.SSLContext, body: dict | None = None, method: str = "POST"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{opa_url(opa.cfg)}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10, context=context) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def _decision(user: str, operation: str, table: str) -> dict:
    resource = {"table": {"catalogName": "iceberg", "schemaName": "taxi", "tableName": table}}
    return {
        "input": {
            "context": {"identity": {"user": user, "groups": []}},
            "action": {"operation": operation, "resource": resource},
        }
    }


def test_trino_gets_decisions(opa):
    trino = opa.client_context(opa.trino_certificate())
    assert _call(opa, "/v1/data/trino/allow", trino, _decision("analyst", "SelectFromColumns", "anomaly_scores")) == (
        200,
        {"result": True},
    )
    maintenance = _decision("analyst", "ExecuteTableProcedure", "anomaly_scores")
    assert _call(opa, "/v1/data/trino/allow", trino, maintenance)[1]["result"] is False
    filters = _call(
        opa, "/v1/data/trino/rowFilters", trino, _decision("green_analyst", "GetRowFilters", "window_features_current")
    )
    assert filters[1]["result"] == [{"expression": "trip_type = 'green'"}]


def test_a_client_without_a_certificate_is_refused_at_the_handshake(opa):
    anonymous = ssl.create_default_context(cafile=str(opa.ca.cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _call(opa, "/v1/data/trino/allow", anonymous, _decision("platform_admin", "DropTable", "anomaly_scores"))


def test_a_certificate_of_another_ca_is_refused(opa, tmp_path):
    stranger = CertificateAuthority(tmp_path / "ca", "someone else's CA").ensure_client("tap-trino")
    context = ssl.create_default_context(cafile=str(opa.ca.cert))
    context.load_cert_chain(str(stranger.cert), str(stranger.key))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _call(opa, "/v1/data/trino/allow", context, _decision("platform_admin", "DropTable", "anomaly_scores"))


@pytest.mark.parametrize(
    ("client", "method", "path"),
    [
        ("trino", "PUT", "/v1/policies/trino"),
        ("trino", "GET", "/v1/policies"),
        ("trino", "POST", "/v1/data/system/authz/allow"),
        ("trino", "GET", "/v1/data"),
        ("health", "POST", "/v1/data/trino/allow"),
    ],
)
def test_each_certificate_reaches_only_its_own_documents(opa, client, method, path):
    certificate = opa.trino_certificate() if client == "trino" else opa.health_certificate()
    body = {"input": {}} if method == "POST" else None
    with pytest.raises(urllib.error.HTTPError) as refused:
        _call(opa, path, opa.client_context(certificate), body, method)
    assert refused.value.code == 401 or refused.value.code == 403, refused.value
