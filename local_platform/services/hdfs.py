"""HDFS (NameNode + one DataNode) from the pinned Hadoop jars: the raw zone when TAP_RAW_STORE=hdfs.

Authentication is Hadoop's "simple" mode, the strongest Hadoop offers without Kerberos: a client *names* its
user (RPC: the login user or HADOOP_USER_NAME; HTTP: `user.name=`), nobody proves it. What that still enforces
here: HTTP requests without a user are refused (no anonymous WebHDFS), permissions are on, and the raw tree is
owned by the platform user (cfg.hdfs_user, mode 750), so a request under any other name cannot write or read it.
It does not stop a local process that claims the platform user's name (or the superuser's, `hdfs`): that takes
Kerberos (docs/exploration.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from local_platform import artifacts
from local_platform.config import LOOPBACK
from local_platform.process import wait_until
from local_platform.services.base import Endpoint, Service

SUPERUSER = "hdfs"  # the NameNode's own user (HADOOP_USER_NAME of its JVM) is HDFS's superuser
RAW_TREE_MODE = "750"
# Hadoop's HTTP servers look their webapps up on the classpath; the Maven jars carry none (PLATFORM-NOTES).
WEBAPPS = ("hdfs", "datanode", "secondary", "static")
# Without this every WebHDFS call answers HTTP 500 on Java 17 (measured, PLATFORM-NOTES).
JAVA_OPENS = "--add-opens=java.base/java.lang=ALL-UNNAMED"


def site_xml(properties: dict[str, str]) -> str:
    body = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n" for k, v in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


class HdfsService(Service):
    name = "hdfs"
    process_names = ("hdfs-namenode", "hdfs-datanode")
    start_timeout = 120.0

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("NameNode RPC", self.cfg.hdfs_uri),
            Endpoint("WebHDFS", self.cfg.webhdfs_url),
            Endpoint("raw zone", self.cfg.raw_root_uri if self.cfg.raw_store == "hdfs" else f"/{self.cfg.raw_bucket}"),
        ]

    # Configuration -------------------------------------------------------------------------------------------
    def core_site(self) -> dict[str, str]:
        return {
            "fs.defaultFS": self.cfg.hdfs_uri,
            "hadoop.tmp.dir": str(self.data_dir() / "tmp"),
            "hadoop.security.authentication": "simple",
            "hadoop.http.authentication.type": "simple",
            "hadoop.http.authentication.simple.anonymous.allowed": "false",
        }

    def hdfs_site(self) -> dict[str, str]:
        cfg, data = self.cfg, self.data_dir()
        return {
            "dfs.namenode.name.dir": (data / "name").as_uri(),
            "dfs.datanode.data.dir": (data / "data").as_uri(),
            "dfs.namenode.rpc-address": f"{LOOPBACK}:{cfg.hdfs_namenode_port}",
            "dfs.namenode.rpc-bind-host": LOOPBACK,
            "dfs.namenode.http-address": f"{LOOPBACK}:{cfg.hdfs_namenode_http_port}",
            "dfs.namenode.http-bind-host": LOOPBACK,
            "dfs.namenode.https-address": f"{LOOPBACK}:0",
            "dfs.namenode.secondary.http-address": f"{LOOPBACK}:0",
            "dfs.datanode.address": f"{LOOPBACK}:{cfg.hdfs_datanode_port}",
            "dfs.datanode.http.address": f"{LOOPBACK}:{cfg.hdfs_datanode_http_port}",
            "dfs.datanode.ipc.address": f"{LOOPBACK}:{cfg.hdfs_datanode_ipc_port}",
            "dfs.datanode.https.address": f"{LOOPBACK}:0",
            "dfs.datanode.hostname": LOOPBACK,  # what the NameNode hands clients (WebHDFS redirects, block reads)
            "dfs.replication": "1",  # one DataNode
            "dfs.permissions.enabled": "true",
            "dfs.permissions.superusergroup": "supergroup",
            "dfs.namenode.safemode.extension": "0",  # one DataNode: nothing to wait for once it reported
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        }

    def write_config(self) -> Path:
        conf = self.conf_dir()
        (conf / "core-site.xml").write_text(site_xml(self.core_site()))
        (conf / "hdfs-site.xml").write_text(site_xml(self.hdfs_site()))
        (conf / "log4j.properties").write_text(
            "log4j.rootLogger=INFO,console\n"
            "log4j.appender.console=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n"
        )
        for app in WEBAPPS:
            web_inf = conf / "webapps" / app / "WEB-INF"
            web_inf.mkdir(parents=True, exist_ok=True)
            (web_inf / "web.xml").write_text('<?xml version="1.0"?>\n<web-app version="3.1"/>\n')
        return conf

    def classpath(self) -> str:
        jars = [str(self.cfg.downloads_dir / a.filename) for a in artifacts.hdfs_jars()]
        return os.pathsep.join([str(self.conf_dir()), *jars])

    def java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.cfg.hdfs_heap}",
            JAVA_OPENS,
            "-Djava.net.preferIPv4Stack=true",
            f"-Dhadoop.log.dir={self.cfg.log_dir}",
            "-cp",
            self.classpath(),
            main_class,
            *args,
        ]

    def env(self) -> dict[str, str]:
        return {**self.java_env(), "HADOOP_USER_NAME": SUPERUSER, "HADOOP_CONF_DIR": str(self.conf_dir())}

    def format_once(self) -> None:
        if (self.data_dir() / "name" / "current" / "VERSION").exists():
            return
        result = subprocess.run(
            self.java("org.apache.hadoop.hdfs.server.namenode.NameNode", "-format", "-nonInteractive"),
            env=self.env(),
            cwd=self.data_dir(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"HDFS NameNode format failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")

    # Lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.write_config()
        self.format_once()
        for proc_name, main_class in (
            ("hdfs-namenode", "org.apache.hadoop.hdfs.server.namenode.NameNode"),
            ("hdfs-datanode", "org.apache.hadoop.hdfs.server.datanode.DataNode"),
        ):
            proc = self.process(proc_name)
            if not proc.is_running():
                proc.start(self.java(main_class), self.env(), self.log_file(proc_name), cwd=self.data_dir())
        wait_until(
            self.healthy, self.start_timeout, "HDFS", self.process("hdfs-datanode"), self.log_file("hdfs-datanode")
        )
        self.provision_raw_tree()

    def jmx(self, query: str) -> dict:
        params = urllib.parse.urlencode({"qry": query, "user.name": SUPERUSER})
        url = f"http://{LOOPBACK}:{self.cfg.hdfs_namenode_http_port}/jmx?{params}"
        with urllib.request.urlopen(url, timeout=3) as resp:
            beans = json.loads(resp.read())["beans"]
        return beans[0] if beans else {}

    def healthy(self) -> bool:
        """One live DataNode and the NameNode out of safe mode (it accepts writes)."""
        try:
            state = self.jmx("Hadoop:service=NameNode,name=FSNamesystemState")
            info = self.jmx("Hadoop:service=NameNode,name=NameNodeInfo")
        except (OSError, ValueError, KeyError):
            return False
        return state.get("NumLiveDataNodes", 0) >= 1 and not info.get("Safemode")

    def webhdfs(self, method: str, path: str, op: str, user: str = SUPERUSER, **params: str) -> dict:
        query = urllib.parse.urlencode({"op": op, "user.name": user, **params})
        request = urllib.request.Request(f"{self.cfg.webhdfs_url}{path}?{query}", method=method)
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else {}

    def provision_raw_tree(self) -> None:
        """/{raw_bucket} exists, owned by the platform user, closed to everyone else (idempotent)."""
        raw = f"/{self.cfg.raw_bucket}"
        user = self.cfg.hdfs_user
        self.webhdfs("PUT", raw, "MKDIRS")
        self.webhdfs("PUT", raw, "SETOWNER", owner=user, group=user)
        self.webhdfs("PUT", raw, "SETPERMISSION", permission=RAW_TREE_MODE)
