"""One naming scheme (helm-values/naming.yaml) across the values files, the manifests, the SparkApplication
template, the Airflow connections secret and the local platform.

Stands in for the cluster's DNS and Secret lookups: a host, port, Secret name or key that disagrees between two
files would only show up in a running cluster as a connection refused or a pod stuck in CreateContainerConfigError.
"""

from __future__ import annotations

import re

import pytest
import yaml

from local_platform import artifacts
from local_platform import connections as local_connections
from local_platform.config import PlatformConfig
from taxi_anomaly.serving.assets import Assets
from tests.deploy.deployment import (
    CHARTS,
    REPO,
    SPARK_TEMPLATE,
    STREAM_SPARK_TEMPLATE,
    connection_templates,
    connections,
    env_value,
    hive_site,
    manifest,
    manifests,
    naming,
    properties,
    secret_key_refs,
    service_address,
    values,
    walk,
)

NAMESPACE = naming()["namespace"]
SECRETS = naming()["secrets"]


def url(scheme: str, service: str) -> str:
    host, port = service_address(service)
    return f"{scheme}://{host}:{port}"


def secret_key(secret: str, key: str) -> tuple[str, str]:
    entry = SECRETS[secret]
    return entry["name"], entry["keys"][key]


# Services: the name each chart or manifest gives its Service -----------------------------------------------


def test_chart_service_names_and_ports_follow_the_naming_scheme():
    releases = naming()["releases"]
    minio, trino, superset = values("minio"), values("trino"), values("superset")

    assert (minio["fullnameOverride"], int(minio["service"]["port"])) == service_address("minio")
    # The MinIO chart names the console Service <fullname>-console.
    assert (f"{minio['fullnameOverride']}-console", int(minio["consoleService"]["port"])) == service_address(
        "minio_console"
    )
    # trino.fullname is nameOverride when it starts with the release name; they are equal here.
    assert trino["nameOverride"] == releases["trino"]["name"]
    # Clients use the HTTPS port; the chart's HTTP port (service.port) is for the coordinator/worker traffic.
    assert (trino["nameOverride"], trino["server"]["config"]["https"]["port"]) == service_address("trino")
    assert (superset["fullnameOverride"], superset["service"]["port"]) == service_address("superset")
    # Airflow chart (useStandardNaming false): <release>-api-server on ports.apiServer, both chart defaults.
    airflow_defaults = yaml.safe_load((REPO / "tests" / "deploy" / "chart_keys.yaml").read_text())["airflow"]
    assert (
        f"{releases['airflow']['name']}-api-server",
        airflow_defaults["defaults_relied_on"]["ports.apiServer"],
    ) == service_address("airflow")


@pytest.mark.parametrize(("service", "name"), [("postgresql", "tap-postgresql"), ("metastore", "tap-metastore")])
def test_manifest_services_follow_the_naming_scheme(service, name):
    svc = manifest("Service", name)
    ports = {p["port"] for p in svc["spec"]["ports"]}
    assert service_address(service) == (svc["metadata"]["name"], ports.pop())
    selected = svc["spec"]["selector"]
    workloads = [
        o
        for o in manifests()
        if o["kind"] in ("Deployment", "StatefulSet")
        and selected.items() <= o["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(workloads) == 1, f"Service {name} selects {len(workloads)} workloads"
    container_ports = {
        p["name"]: p["containerPort"]
        for c in workloads[0]["spec"]["template"]["spec"]["containers"]
        for p in c["ports"]
    }
    target = svc["spec"]["ports"][0]["targetPort"]
    assert target in container_ports, f"Service {name} targets port {target!r}, not a container port"


# Endpoints: every file that points at another service uses its naming-scheme address -------------------------


def test_trino_points_at_the_metastore_and_s3_and_serves_the_local_catalog():
    trino = values("trino")
    env = trino["env"]
    assert env_value(env, "TAP_METASTORE_URI") == url("thrift", "metastore")
    assert env_value(env, "TAP_S3_ENDPOINT") == url("http", "minio")

    local = properties((REPO / "include" / "trino" / "catalog" / "iceberg.properties").read_text())
    deployed = properties(trino["catalogs"]["iceberg"])
    assert deployed == local, "helm-values/trino.yaml's iceberg catalog differs from include/trino/catalog"
    assert naming()["iceberg"]["catalog"] == "iceberg"
    # Every ${ENV:...} placeholder of the catalog and the server config is set, secrets from Secrets.
    configs = (
        trino["catalogs"]["iceberg"] + trino["server"]["coordinatorExtraConfig"] + trino["server"]["workerExtraConfig"]
    )
    placeholders = set(re.findall(r"\$\{ENV:([A-Z0-9_]+)\}", configs))
    assert placeholders == {e["name"] for e in env}
    assert set(secret_key_refs(env)) == {
        secret_key("s3", "access_key"),
        secret_key("s3", "secret_key"),
        secret_key("trino_auth", "shared_secret"),
    }
    # The chart's example catalogs are removed (null deletes a default key in Helm's merge).
    assert {k for k, v in trino["catalogs"].items() if v is not None} == {"iceberg"}


def test_trino_secures_clients_as_the_local_platform_does():
    """HTTPS on the naming-scheme port, password logins from the auth Secret, TLS keystore from the TLS Secret."""
    server = values("trino")["server"]["config"]
    assert server["https"]["enabled"] is True
    assert server["https"]["port"] == service_address("trino")[1]
    assert server["authenticationType"] == "PASSWORD"
    assert values("trino")["auth"] == {"passwordAuthSecret": SECRETS["trino_auth"]["name"]}
    assert SECRETS["trino_auth"]["keys"]["password_db"] == "password.db", "the chart reads this key"
    mount = next(m for m in values("trino")["secretMounts"] if m["secretName"] == SECRETS["trino_tls"]["name"])
    assert server["https"]["keystore"]["path"] == f"{mount['path']}/{SECRETS['trino_tls']['keys']['keystore']}"


def test_trino_image_is_the_local_trino_version():
    assert values("trino")["image"]["tag"] == artifacts.TRINO_VERSION


def test_metastore_points_at_postgresql_minio_and_the_warehouse_bucket():
    site = hive_site(manifest("ConfigMap", "tap-metastore-config")["data"]["hive-site.xml"])
    host, port = service_address("postgresql")
    db = naming()["databases"]["metastore"]
    assert site["javax.jdo.option.ConnectionURL"] == f"jdbc:postgresql://{host}:{port}/{db['name']}"
    assert site["javax.jdo.option.ConnectionUserName"] == db["user"]
    assert site["javax.jdo.option.ConnectionPassword"] == "${env.METASTORE_DB_PASSWORD}"
    assert site["fs.s3a.endpoint"] == url("http", "minio")
    assert site["fs.s3a.path.style.access"] == "true"
    assert site["metastore.warehouse.dir"].startswith(f"s3a://{naming()['buckets']['warehouse']}/")

    container = manifest("Deployment", "tap-metastore")["spec"]["template"]["spec"]["containers"][0]
    assert env_value(container["env"], "METASTORE_DB_PASSWORD")["secretKeyRef"] == dict(
        zip(("name", "key"), secret_key("postgresql", "metastore"), strict=True)
    )
    images = naming()["images"]["metastore"]
    assert container["image"] == f"{images['repository']}:{images['tag']}"
    assert {p["containerPort"] for p in container["ports"]} == {service_address("metastore")[1]}


def test_postgresql_creates_one_database_per_service():
    init = manifest("ConfigMap", "tap-postgresql-init")["data"]["10-tap-databases.sh"]
    container = manifest("StatefulSet", "tap-postgresql")["spec"]["template"]["spec"]["containers"][0]
    for service, db in naming()["databases"].items():
        assert db["name"] == db["user"], "the init script names each database after its owner"
        password_var = f"{service.upper()}_DB_PASSWORD"
        assert f'create_database {db["user"]} "${password_var}"' in init
        assert env_value(container["env"], password_var)["secretKeyRef"] == dict(
            zip(("name", "key"), secret_key("postgresql", service), strict=True)
        )


def test_superset_points_at_postgresql_and_registers_trino():
    superset = values("superset")
    host, port = service_address("postgresql")
    db = naming()["databases"]["superset"]
    database = superset["database"]
    assert (database["host"], database["port"], database["name"], database["user"]) == (
        host,
        port,
        db["name"],
        db["user"],
    )
    assert (database["existingSecret"], database["secretKeys"]["password"]) == secret_key("postgresql", "superset")

    imported = yaml.safe_load(superset["extraConfigs"]["import_datasources.yaml"])["databases"]
    trino_host, trino_port = service_address("trino")
    expected_uri = (
        f"trino://{naming()['users']['trino_analyst']}@{trino_host}:{trino_port}/{naming()['iceberg']['catalog']}"
    )
    assert [(d["database_name"], d["sqlalchemy_uri"]) for d in imported] == [("trino", expected_uri)]
    # The asset's uuid: the assets import finds the database by it and keeps its password (none is sent).
    (asset,) = Assets.load().of_kind("databases").values()
    assert [str(d["uuid"]) for d in imported] == [str(asset["uuid"])]


def test_superset_runs_the_local_superset_and_trino_driver_versions():
    superset = values("superset")
    requirements = (REPO / "include" / "superset" / "requirements.txt").read_text()
    lock = (REPO / "include" / "superset" / "requirements.lock").read_text()
    superset_pin = re.search(r"^apache-superset\[trino\]==(\S+)", requirements, re.M).group(1)
    trino_pin = re.search(r"^trino==(\S+)", lock, re.M).group(1)
    assert superset["image"]["tag"] == superset_pin
    assert f"trino=={trino_pin}" in superset["bootstrapScript"]


def test_airflow_uses_the_platform_secrets_and_connections():
    airflow = values("airflow")
    assert airflow["data"]["metadataSecretName"] == SECRETS["airflow_metadata"]["name"]
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert airflow[key] == SECRETS["airflow"]["name"]
    env_from = yaml.safe_load(airflow["extraEnvFrom"])
    assert env_from == [{"secretRef": {"name": SECRETS["airflow_connections"]["name"]}}]
    assert secret_key_refs(airflow["createUserJob"]["env"]) == [secret_key("airflow_admin", "password")]
    assert airflow["createUserJob"]["defaultUser"]["username"] == naming()["users"]["airflow_admin"]

    images = naming()["images"]
    assert (airflow["defaultAirflowRepository"], airflow["defaultAirflowTag"]) == (
        images["airflow"]["repository"],
        images["airflow"]["tag"],
    )
    spark_image = f"{images['spark']['repository']}:{images['spark']['tag']}"
    assert env_value(airflow["env"], "AIRFLOW_VAR_TAP_SPARK_IMAGE") == spark_image
    assert env_value(airflow["env"], "AIRFLOW_VAR_TAP_K8S_NAMESPACE") == NAMESPACE


def test_airflow_scheduler_service_account_is_the_one_allowed_to_launch_spark():
    sa = naming()["service_accounts"]["airflow_scheduler"]
    assert values("airflow")["scheduler"]["serviceAccount"]["name"] == sa
    binding = manifest("RoleBinding", "tap-airflow-spark-launcher")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
    role = manifest("Role", binding["roleRef"]["name"])
    spark_rules = [r for r in role["rules"] if r["apiGroups"] == ["sparkoperator.k8s.io"]]
    assert spark_rules and {"create", "get", "watch", "delete"} <= set(spark_rules[0]["verbs"])
    pod_rules = [r for r in role["rules"] if r["apiGroups"] == [""] and "pods/log" in r["resources"]]
    assert pod_rules, "the operator reads the driver's log"


def test_spark_operator_watches_the_namespace_with_the_template_service_account():
    operator = values("spark-operator")
    assert operator["spark"]["jobNamespaces"] == [NAMESPACE]
    sa = naming()["service_accounts"]["spark"]
    assert operator["spark"]["serviceAccount"]["name"] == sa
    assert operator["webhook"]["enable"] is True, "the webhook applies driver/executor env (the S3 key pair)"
    template = SPARK_TEMPLATE.read_text()
    assert template.count(f"serviceAccount: {sa}") == 2, "driver and executor run under the operator's account"


# Buckets ---------------------------------------------------------------------------------------------------


def test_buckets_are_the_local_platform_buckets_everywhere():
    buckets = naming()["buckets"]
    assert tuple(buckets.values()) == PlatformConfig().buckets
    assert [b["name"] for b in values("minio")["buckets"]] == list(buckets.values())
    s3 = connections()["tap_s3"]["extra"]
    assert {k.removesuffix("_bucket"): v for k, v in s3.items() if k.endswith("_bucket")} == buckets
    assert naming()["iceberg"]["warehouse"] == f"s3a://{buckets['warehouse']}/iceberg"


# Secrets ---------------------------------------------------------------------------------------------------


def all_secret_refs() -> set[tuple[str, str]]:
    refs = set()
    for chart in CHARTS:
        refs.update(secret_key_refs(values(chart)))
    for obj in manifests():
        refs.update(secret_key_refs(obj))
    return refs


def secret_volume_refs() -> set[tuple[str, str]]:
    """(Secret, key) of Secret volumes (items) and chart mounts of whole Secrets (key None)."""
    refs = set()
    documents = [values(c) for c in ("airflow", "superset", "trino")] + manifests()
    for document in documents:
        for _, value in walk(document):
            if isinstance(value, dict) and "secretName" in value:
                items = value.get("items") or [{"key": None}]
                refs.update((value["secretName"], item["key"]) for item in items)
    return refs


def template_secret_refs(template=SPARK_TEMPLATE) -> set[tuple[str, str]]:
    """secretKeyRef blocks of a SparkApplication template, read as text (it is Jinja, not YAML)."""
    pairs = re.findall(r"secretKeyRef:\s*\n\s*name: (\S+)\s*\n\s*key: (\S+)", template.read_text())
    return set(pairs)


def test_every_secret_reference_names_a_secret_and_key_of_the_scheme():
    declared = {(s["name"], key) for s in SECRETS.values() for key in s.get("keys", {}).values()}
    declared |= {(s["name"], key) for s in SECRETS.values() for key in s.get("env_file_keys", {}).values()}
    refs = all_secret_refs() | template_secret_refs() | template_secret_refs(STREAM_SPARK_TEMPLATE)
    assert refs, "no secretKeyRef found"
    assert refs <= declared, f"undeclared Secret keys: {sorted(refs - declared)}"
    volumes = secret_volume_refs()
    assert {(n, k) for n, k in volumes if k} <= declared, f"undeclared Secret keys: {sorted(volumes - declared)}"
    # Secrets referenced by name only (the charts read fixed keys from them).
    by_name = {
        values("trino")["auth"]["passwordAuthSecret"],
        *(name for name, _ in volumes),
        values("minio")["existingSecret"],
        values("superset")["database"]["existingSecret"],
        *(values("airflow")[k] for k in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName")),
        values("airflow")["data"]["metadataSecretName"],
    }
    assert by_name <= {s["name"] for s in SECRETS.values()}
    # Every declared Secret is used by something.
    used_names = {name for name, _ in refs} | by_name | {SECRETS["airflow_connections"]["name"]}
    assert {s["name"] for s in SECRETS.values()} == used_names


def test_s3_secret_keys_are_the_ones_the_minio_chart_reads():
    """The MinIO chart reads rootUser/rootPassword from existingSecret; Spark, Trino and the metastore reuse them."""
    assert values("minio")["existingSecret"] == SECRETS["s3"]["name"]
    assert SECRETS["s3"]["keys"] == {"access_key": "rootUser", "secret_key": "rootPassword"}
    assert template_secret_refs() == {secret_key("s3", "access_key"), secret_key("s3", "secret_key")}


def test_connection_keys_read_one_by_one_are_created_by_the_connections_template():
    """A key of tap-airflow-connections exists only if the env-file template has a line of that name."""
    keys = SECRETS["airflow_connections"]["env_file_keys"]
    assert keys, "the streaming job's driver reads one"
    assert set(keys.values()) <= set(connection_templates())
    name = SECRETS["airflow_connections"]["name"]
    stream_refs = template_secret_refs(STREAM_SPARK_TEMPLATE)
    assert {(name, key) for key in keys.values()} <= stream_refs


# Airflow connections ---------------------------------------------------------------------------------------


def local_definitions() -> dict[str, dict]:
    from local_platform.credentials import Credentials

    return local_connections.connection_definitions(PlatformConfig(), Credentials.generate())


def test_connection_ids_are_the_local_ids_plus_kubernetes():
    # tap_hdfs is the local HDFS (WebHDFS, simple auth); the cluster's HDFS variant is Kerberized and needs a
    # Kerberos-capable client the ingestion does not have yet (docs/exploration.md).
    local_ids = set(local_definitions()) - {local_connections.SPARK_LOCAL_CONN_ID, local_connections.HDFS_CONN_ID}
    ids = set(connections())
    assert ids == local_ids | {naming()["connections"]["kubernetes"]}
    assert ids == set(naming()["connections"].values())


@pytest.mark.parametrize(
    ("conn_id", "service"),
    [
        ("tap_s3", "minio"),
        ("tap_metastore", "metastore"),
        ("tap_trino", "trino"),
        ("tap_trino_analyst", "trino"),
        ("tap_superset", "superset"),
        ("tap_kafka_replay", "kafka"),
        ("tap_kafka_streaming", "kafka"),
        ("tap_kafka_reader", "kafka"),
    ],
)
def test_connection_has_the_local_shape_and_the_cluster_address(conn_id, service):
    """Same conn_type, schema and extra keys as locally (plugins read them), pointed at the in-cluster Service."""
    local = local_definitions()[conn_id]
    conn = connections()[conn_id]
    assert (conn["host"], conn["port"]) == service_address(service)
    assert conn["conn_type"] == local["conn_type"]
    assert conn.get("schema") == local.get("schema")
    assert set(conn.get("extra", {})) >= set(local.get("extra", {})), "a key the plugins read is missing"
    assert conn.get("login") is not None or local.get("login") is None


def test_connection_extras_point_at_the_cluster():
    s3 = connections()["tap_s3"]
    assert s3["extra"]["endpoint_url"] == url("http", "minio")
    assert s3["extra"]["region_name"] == naming()["s3_region"]
    trino = connections()["tap_trino"]
    assert trino["login"] == naming()["users"]["trino_admin"]
    (mount,) = values("airflow")["volumeMounts"]
    assert trino["extra"]["http_scheme"] == "https"
    assert trino["extra"]["verify"] == f"{mount['mountPath']}/{SECRETS['trino_tls']['keys']['ca']}"
    assert connections()["tap_superset"]["login"] == naming()["users"]["superset_admin"]
    kube = connections()["tap_kubernetes"]
    assert kube["conn_type"] == "kubernetes"
    assert kube["extra"] == {"in_cluster": True, "namespace": NAMESPACE}
