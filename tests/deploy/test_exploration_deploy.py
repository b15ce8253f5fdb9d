"""The exploration deployment (Spark Connect, JupyterHub) and the HDFS variant follow the naming scheme and the
local platform: the Connect server has the batch job's catalog and S3 settings, the notebooks reach it with the
token Secret, and the HDFS cluster's names and raw root are the ones the platform uses.

No cluster here: the SparkConnect and HdfsCluster resources are compared by name and value, not validated against
their CRDs by an API server (docs/exploration.md, "What is tested")."""

from __future__ import annotations

from local_platform.config import PlatformConfig
from local_platform.credentials import Credentials
from local_platform.spark import spark_defaults
from tests.deploy.deployment import manifest, naming, service_address, values

CATALOG_KEYS = (
    "spark.sql.extensions",
    "spark.sql.catalog.iceberg",
    "spark.sql.catalog.iceberg.type",
    "spark.sql.catalog.iceberg.uri",
    "spark.sql.catalog.iceberg.warehouse",
)


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_spark_connect_runs_the_batch_jobs_catalog_and_s3_settings():
    connect = manifest("SparkConnect", "tap-spark-connect")["spec"]
    local = spark_defaults(PlatformConfig(), Credentials.generate())
    metastore_host, metastore_port = service_address("metastore")
    minio_host, minio_port = service_address("minio")
    endpoints = {
        "spark.sql.catalog.iceberg.uri": f"thrift://{metastore_host}:{metastore_port}",
        "spark.hadoop.fs.s3a.endpoint": f"http://{minio_host}:{minio_port}",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        ),
    }
    conf = {**connect["sparkConf"], **{f"spark.hadoop.{k}": v for k, v in connect["hadoopConf"].items()}}
    assert set(CATALOG_KEYS) <= set(conf)
    for key, value in conf.items():
        assert value == endpoints.get(key, local[key]), f"{key}: {value!r} differs from the local platform"
    assert connect["sparkVersion"] == naming()["images"]["spark"]["tag"].split("-")[0]
    spark_image = naming()["images"]["spark"]
    assert connect["image"] == f"{spark_image['repository']}:{spark_image['tag']}"


def test_spark_connect_checks_the_token_secret_and_runs_as_the_spark_account():
    connect = manifest("SparkConnect", "tap-spark-connect")["spec"]
    secret = naming()["secrets"]["spark_connect"]
    server = connect["server"]["template"]["spec"]
    (driver,) = server["containers"]
    token = _env(driver)["SPARK_CONNECT_AUTHENTICATE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": secret["name"], "key": secret["keys"]["token"]}
    s3 = naming()["secrets"]["s3"]
    for role in ("server", "executor"):
        spec = connect[role]["template"]["spec"]
        assert spec["serviceAccountName"] == naming()["service_accounts"]["spark"]
        env = _env(spec["containers"][0])
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
            "name": s3["name"],
            "key": s3["keys"]["access_key"],
        }
    # The spark-operator names the server's Service <name>-server; gRPC on Spark Connect's port.
    assert service_address("spark_connect") == ("tap-spark-connect-server", PlatformConfig().spark_connect_port)


def test_jupyterhub_user_servers_reach_spark_connect_with_the_token():
    hub = values("jupyterhub")
    env = hub["singleuser"]["extraEnv"]
    host, port = service_address("spark_connect")
    assert env["SPARK_REMOTE"].startswith(f"sc://{host}:{port}/")
    assert "use_ssl=true" in env["SPARK_REMOTE"]  # pyspark sends a token over TLS only, to any host but localhost
    secret = naming()["secrets"]["spark_connect"]
    assert env["SPARK_CONNECT_AUTHENTICATE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["name"],
        "key": secret["keys"]["token"],
    }
    app_root = naming()["spark_image"]["app_root"]
    assert env["PYTHONPATH"].split(":") == [f"{app_root}/spark_jobs", f"{app_root}/plugins"]
    image = naming()["images"]["notebook"]
    singleuser_image = hub["singleuser"]["image"]
    assert (singleuser_image["name"], singleuser_image["tag"]) == (image["repository"], image["tag"])
    assert f"{hub['fullnameOverride']}-proxy-public" == service_address("jupyterhub")[0]
    assert hub["fullnameOverride"] == naming()["releases"]["jupyterhub"]["name"]
    assert hub["hub"]["config"]["JupyterHub"]["authenticator_class"] != "dummy"
    assert hub["hub"]["config"]["NativeAuthenticator"]["open_signup"] is False


def test_the_hdfs_variant_uses_the_platforms_names_and_kerberos():
    names = naming()["hdfs"]
    cluster = manifest("HdfsCluster", names["cluster"])["spec"]
    assert cluster["clusterConfig"]["zookeeperConfigMapName"] == names["znode"]
    assert manifest("ZookeeperZnode", names["znode"])["spec"]["clusterRef"]["name"] == names["zookeeper"]
    assert manifest("ZookeeperCluster", names["zookeeper"])
    assert cluster["clusterConfig"]["authentication"]["kerberos"]["secretClass"] == names["kerberos_secret_class"]
    # The raw tree and its owner are the local platform's (the nameservice is the cluster's name).
    local = PlatformConfig()
    assert names["raw_root"] == f"hdfs://{names['cluster']}/{local.raw_bucket}"
    assert names["user"] == local.hdfs_user
    assert cluster["nameNodes"]["roleGroups"]["default"]["replicas"] >= 2  # failover needs two
