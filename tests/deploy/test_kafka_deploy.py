"""Kafka on Kubernetes (Strimzi, helm-values/manifests/kafka.yaml) against the local platform's stream contract.

Stands in for what only a running cluster would show: the API server's validation of the Strimzi resources (by the
CRD schema subset in strimzi-v1.subset.schema.json), the topics and ACLs the Topic and User Operators would create
(compared with plugins/taxi_anomaly/streaming/topics.py and the ACL bindings the local provisioning creates), and
whether the Airflow connections reach the cluster's bootstrap Service with a login the cluster knows.
"""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest

from local_platform import artifacts
from local_platform import connections as local_connections
from local_platform.config import PlatformConfig
from local_platform.credentials import Credentials
from local_platform.services.kafka import KAFKA_PRINCIPALS, SCRAM_MECHANISM, KafkaService
from taxi_anomaly.streaming import topics as contract
from taxi_anomaly.streaming.settings import CONN_ENV, KafkaSettings
from tests.deploy.deployment import (
    KAFKA_MANIFEST,
    STRIMZI_SCHEMA_FILE,
    chart_keys,
    connection_templates,
    connections,
    fill_placeholders,
    guide_commands,
    kafka_objects,
    naming,
    service_address,
    values,
)

KAFKA = naming()["kafka"]
FACTS = chart_keys()["strimzi"]["operator_facts"]
ROLES = local_connections.KAFKA_ROLES


def cluster() -> dict:
    (kafka,) = kafka_objects("Kafka")
    return kafka


def node_pool() -> dict:
    (pool,) = kafka_objects("KafkaNodePool")
    return pool


def users() -> dict[str, dict]:
    return {u["metadata"]["name"]: u for u in kafka_objects("KafkaUser")}


def config_text(value) -> str:
    """A config value as Kafka reads it from server.properties (YAML booleans become true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# The resources are valid Strimzi v1 objects -----------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    loaded = json.loads(STRIMZI_SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def errors(schema: dict, document: dict) -> list[str]:
    kind_schema = {**schema["$defs"][document["kind"]], "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(kind_schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_manifest_holds_the_four_kinds_in_the_crd_api_version(schema):
    objects = [*kafka_objects("Kafka"), *kafka_objects("KafkaNodePool")]
    objects += [*kafka_objects("KafkaTopic"), *kafka_objects("KafkaUser")]
    kinds = sorted(o["kind"] for o in objects)
    topics = len(contract.TOPICS)  # one KafkaTopic per topic of the contract, one KafkaUser per principal
    assert kinds == sorted(["Kafka", "KafkaNodePool"] + ["KafkaTopic"] * topics + ["KafkaUser"] * 4)
    assert {o["apiVersion"] for o in objects} == {FACTS["api_version"]}
    for obj in objects:
        assert errors(schema, obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_schema_subset_rejects_what_the_api_server_would_drop_or_refuse(schema):
    misspelt = copy.deepcopy(cluster())
    misspelt["spec"]["kafka"]["listeners"][0]["authentification"] = {"type": "scram-sha-512"}
    bad_auth = copy.deepcopy(cluster())
    bad_auth["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    bad_operation = copy.deepcopy(users()["tap-reader"])
    bad_operation["spec"]["authorization"]["acls"][0]["operations"] = ["READ"]  # Strimzi spells it Read
    old_acl = copy.deepcopy(users()["tap-reader"])
    acl = old_acl["spec"]["authorization"]["acls"][0]
    acl["operation"] = acl.pop("operations")[0]  # the v1beta2 field, removed in v1
    bad_role = copy.deepcopy(node_pool())
    bad_role["spec"]["roles"] = ["broker", "voter"]
    old_api = copy.deepcopy(kafka_objects("KafkaTopic")[0])
    old_api["apiVersion"] = "kafka.strimzi.io/v1beta2"
    bad_name = copy.deepcopy(kafka_objects("KafkaTopic")[0])
    bad_name["metadata"]["name"] = "Tap_Trips"
    for broken in (misspelt, bad_auth, bad_operation, old_acl, bad_role, old_api, bad_name):
        assert errors(schema, broken), "the schema subset must reject this document"


# The cluster: one KRaft node, one SCRAM listener, the naming scheme's names -----------------------------------


def test_cluster_is_one_combined_kraft_node():
    kafka, pool = cluster(), node_pool()
    assert kafka["metadata"]["name"] == KAFKA["cluster"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/kraft": "enabled", "strimzi.io/node-pools": "enabled"}
    assert pool["metadata"]["name"] == KAFKA["node_pool"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA["cluster"]
    assert pool["spec"]["replicas"] == 1
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"], "one node is both, as locally"
    assert pool["spec"]["storage"]["type"] == "persistent-claim"
    assert pool["spec"]["storage"]["deleteClaim"] is False, "uninstalling must not delete the topics' data"


def test_kafka_version_is_one_this_strimzi_runs_and_the_local_major():
    kafka = cluster()["spec"]["kafka"]
    version = kafka["version"]
    assert version in FACTS["supported_kafka_versions"]
    assert version == max(FACTS["supported_kafka_versions"], key=lambda v: tuple(map(int, v.split("."))))
    assert version.split(".")[0] == artifacts.KAFKA_VERSION.split(".")[0]
    major_minor = ".".join(version.split(".")[:2])
    assert kafka["metadataVersion"].startswith(f"{major_minor}-IV")


def test_the_listener_is_the_naming_schemes_bootstrap_service_with_scram():
    (listener,) = cluster()["spec"]["kafka"]["listeners"]
    expected = KAFKA["listener"]
    assert (listener["name"], listener["port"], listener["type"]) == (expected["name"], expected["port"], "internal")
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert expected["sasl_mechanism"] == SCRAM_MECHANISM
    # SCRAM on a listener without TLS is what Kafka clients call SASL_PLAINTEXT.
    assert expected["security_protocol"] == ("SASL_SSL" if listener["tls"] else "SASL_PLAINTEXT")
    # Strimzi names the Service <cluster>-kafka-bootstrap and gives it each listener's port.
    assert service_address("kafka") == (f"{KAFKA['cluster']}{FACTS['bootstrap_service_suffix']}", listener["port"])


def test_authorization_denies_what_no_acl_allows_and_knows_one_super_user():
    spec = cluster()["spec"]["kafka"]
    assert spec["authorization"] == {"type": "simple", "superUsers": [KAFKA_PRINCIPALS["admin"]]}
    assert config_text(spec["config"]["allow.everyone.if.no.acl.found"]) == "false"


def test_broker_config_is_the_local_brokers_where_strimzi_lets_one_set_it():
    """Strimzi sets listeners, SASL, the authorizer, node ids and log dirs itself and rejects them in config; every
    other setting of the local broker is set here to the same value, and nothing else is set."""
    local = KafkaService(PlatformConfig(), Credentials.generate()).server_properties()
    forbidden, exceptions = FACTS["forbidden_config_prefixes"], set(FACTS["forbidden_config_exceptions"])

    def settable(key: str) -> bool:
        return key in exceptions or not key.startswith(tuple(forbidden))

    deployed = {key: config_text(value) for key, value in cluster()["spec"]["kafka"]["config"].items()}
    assert all(settable(key) for key in deployed), [key for key in deployed if not settable(key)]
    assert deployed == {key: value for key, value in local.items() if settable(key)}
    assert deployed["auto.create.topics.enable"] == "false", "topics come from KafkaTopic resources only"


def test_replication_fits_the_node_count():
    replicas = node_pool()["spec"]["replicas"]
    config = cluster()["spec"]["kafka"]["config"]
    factors = {key: int(value) for key, value in config.items() if key.endswith(("replication.factor", "min.isr"))}
    assert factors and all(1 <= factor <= replicas for factor in factors.values()), factors
    for topic in kafka_objects("KafkaTopic"):
        assert topic["spec"]["replicas"] <= replicas
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]


def test_entity_operator_runs_the_topic_and_user_operators():
    entity = cluster()["spec"]["entityOperator"]
    assert set(entity) == {"topicOperator", "userOperator"}
    for operator in entity.values():
        assert operator["resources"]["requests"] and operator["resources"]["limits"]


# Topics and users: the stream contract ----------------------------------------------------------------------


def test_topics_are_the_stream_contract():
    deployed = {
        t["spec"].get("topicName", t["metadata"]["name"]): (
            t["spec"]["partitions"],
            {key: config_text(value) for key, value in t["spec"]["config"].items()},
        )
        for t in kafka_objects("KafkaTopic")
    }
    assert deployed == {t.name: (t.partitions, t.configs) for t in contract.TOPICS}
    assert KAFKA["topics"] == {
        "trips": contract.TRIPS.name,
        "alerts": contract.ALERTS.name,
        "dead_letters": contract.DEAD_LETTERS.name,
        "events": contract.EVENTS.name,
        "event_alerts": contract.EVENT_ALERTS.name,
    }


def test_every_strimzi_resource_belongs_to_the_cluster():
    for obj in [node_pool(), *kafka_objects("KafkaTopic"), *kafka_objects("KafkaUser")]:
        assert obj["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA["cluster"], obj["metadata"]["name"]


def test_users_are_the_local_principals():
    assert KAFKA["users"] == KAFKA_PRINCIPALS
    assert set(users()) == set(KAFKA_PRINCIPALS.values())
    for user in users().values():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    # The super user needs no ACLs; every other role has its own.
    with_acls = {name for name, user in users().items() if "authorization" in user["spec"]}
    assert with_acls == {KAFKA_PRINCIPALS[role] for role in contract.GRANTS}
    assert KAFKA_PRINCIPALS["admin"] not in with_acls


def deployed_acls(kafka_users: dict[str, dict] | None = None) -> list[tuple[str, ...]]:
    """Every (principal, resource type, name, pattern, host, operation, permission) the User Operator would create
    for the KafkaUsers of the manifest (or of `kafka_users`), in the terms of Kafka's admin API."""
    patterns = {"literal": "LITERAL", "prefix": "PREFIXED"}
    acls = []
    for name, user in (kafka_users or users()).items():
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            for operation in acl["operations"]:
                acls.append(
                    (
                        f"User:{name}",
                        resource["type"].upper(),
                        resource["name"],
                        patterns[resource.get("patternType", "literal")],
                        acl.get("host", "*"),
                        operation.upper(),
                        acl.get("type", "allow").upper(),
                    )
                )
    return acls


def contract_acls() -> set[tuple[str, ...]]:
    """The ACLs topics.py describes: each grant plus DESCRIBE, READ on the groups of the role's prefix."""
    expected = set()
    for role, grants in contract.GRANTS.items():
        principal = f"User:{KAFKA_PRINCIPALS[role]}"
        for topic, operations in grants.items():
            expected |= {(principal, "TOPIC", topic, "LITERAL", "*", op, "ALLOW") for op in (*operations, "DESCRIBE")}
        if role in contract.GROUP_PREFIX:
            expected.add((principal, "GROUP", contract.GROUP_PREFIX[role], "PREFIXED", "*", "READ", "ALLOW"))
    return expected


def test_user_acls_are_the_stream_contract_and_nothing_more():
    deployed = deployed_acls()
    assert len(deployed) == len(set(deployed)), "an ACL is listed twice"
    assert set(deployed) == contract_acls()


def test_user_acls_are_the_local_provisionings_acls():
    """The same bindings `python -m taxi_anomaly.streaming.provision` creates on the local broker."""
    pytest.importorskip("confluent_kafka")
    from taxi_anomaly.streaming.provision import acl_bindings

    local = [
        (
            b.principal,
            b.restype.name,
            b.name,
            b.resource_pattern_type.name,
            b.host,
            b.operation.name,
            b.permission_type.name,
        )
        for b in acl_bindings(KAFKA_PRINCIPALS)
    ]
    assert sorted(deployed_acls()) == sorted(local)


def test_the_acl_check_catches_a_changed_grant():
    widened = copy.deepcopy(users())
    widened["tap-reader"]["spec"]["authorization"]["acls"][0]["operations"].append("Write")
    narrowed = copy.deepcopy(users())
    narrowed["tap-streaming"]["spec"]["authorization"]["acls"].pop()  # the consumer-group grant
    prefixed = copy.deepcopy(users())
    prefixed["tap-replay"]["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = "prefix"
    for changed in (widened, narrowed, prefixed):
        assert set(deployed_acls(changed)) != contract_acls()


# Airflow connections: the local shape, the cluster's address and logins ---------------------------------------


def local_kafka_connection(role: str) -> dict:
    definitions = local_connections.connection_definitions(PlatformConfig(), Credentials.generate())
    return definitions[f"tap_kafka_{role}"]


@pytest.mark.parametrize("role", ROLES)
def test_kafka_connection_has_the_local_shape_and_the_bootstrap_address(role):
    conn_id = naming()["connections"][f"kafka_{role}"]
    assert conn_id == f"tap_kafka_{role}"
    local, conn = local_kafka_connection(role), connections()[conn_id]
    host, port = service_address("kafka")
    assert (conn["host"], conn["port"]) == (host, port)
    assert conn["conn_type"] == local["conn_type"]
    assert set(conn) == set(local)
    assert set(conn["extra"]) == set(local["extra"])
    assert conn["login"] == local["login"] == KAFKA["users"][role]
    assert conn["extra"] == {
        "bootstrap_servers": f"{host}:{port}",
        "security_protocol": KAFKA["listener"]["security_protocol"],
        "sasl_mechanism": local["extra"]["sasl_mechanism"],
    }
    # The login must be one the cluster has (a KafkaUser) with the ACLs of the role.
    assert conn["login"] in users() and "authorization" in users()[conn["login"]]["spec"]


@pytest.mark.parametrize("role", ROLES)
def test_kafka_connection_password_is_a_placeholder_filled_from_the_users_secret(role):
    variable = f"KAFKA_{role.upper()}_PASSWORD"
    raw = connection_templates()[CONN_ENV[role]]
    assert json.loads(raw)["password"] == f"${{{variable}}}"
    user = KAFKA["users"][role]
    secret_read = (
        rf"{variable}=\$\(kubectl -n \"\$NS\" get secret {re.escape(user)} "
        rf"-o jsonpath='\{{\.data\.{re.escape(FACTS['user_secret_password_key'])}\}}' \| base64 -d\)"
    )
    assert re.search(secret_read, guide_commands()), f"the guide does not read {variable} from Secret {user}"
    assert KAFKA["user_secret_key"] == FACTS["user_secret_password_key"]


@pytest.mark.parametrize("role", ROLES)
def test_the_plugins_read_the_kafka_connection_as_deployed(role):
    """taxi_anomaly.streaming.settings, the code that opens the Kafka clients, accepts the deployed connection."""
    password = f"stand-in-{role}-7d1e"
    filled = fill_placeholders(connection_templates()[CONN_ENV[role]], {f"KAFKA_{role.upper()}_PASSWORD": password})
    settings = KafkaSettings.for_role(role, environ={CONN_ENV[role]: filled})
    host, port = service_address("kafka")
    assert (settings.bootstrap, settings.user, settings.password) == (f"{host}:{port}", KAFKA["users"][role], password)
    assert (settings.security_protocol, settings.mechanism) == ("SASL_PLAINTEXT", SCRAM_MECHANISM)
    assert settings.spark_options()["kafka.bootstrap.servers"] == f"{host}:{port}"


# The operator and the install order -------------------------------------------------------------------------


def test_strimzi_operator_watches_the_platform_namespace_only():
    operator = values("strimzi")
    assert operator["watchNamespaces"] == [naming()["namespace"]]
    assert operator["watchAnyNamespace"] is False
    # The chart adds the release namespace to the watched ones: the release must live in the platform namespace.
    install = re.search(r"helm install tap-strimzi strimzi/strimzi-kafka-operator [^\n]*", guide_commands())
    assert install and ' -n "$NS" ' in install.group(0)
    assert naming()["releases"]["kafka"]["name"] == "tap-strimzi"


def test_guide_installs_kafka_after_the_namespace_and_before_airflow():
    commands = guide_commands()

    def position(text: str) -> int:
        assert text in commands, f"the guide lacks: {text}"
        return commands.index(text)

    order = [
        'kubectl create namespace "$NS"',
        "helm install tap-strimzi ",
        f'kubectl -n "$NS" apply -f "$DEPLOY/helm-values/manifests/{KAFKA_MANIFEST.name}"',
        'kubectl -n "$NS" wait kafkauser --all --for=condition=Ready',
        "create secret generic tap-airflow-connections",
        "helm install tap-airflow ",
    ]
    positions = [position(text) for text in order]
    assert positions == sorted(positions), "Strimzi, then the cluster and its users, then the connections, then Airflow"
