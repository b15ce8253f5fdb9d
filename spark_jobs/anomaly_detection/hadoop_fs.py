"""Small files on any Hadoop filesystem (s3a://, hdfs://, file://) through the session's JVM and configuration:
the model registry and the labels are read and written with these."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


class MissingFile(FileNotFoundError):
    pass


def _path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def exists(spark: SparkSession, uri: str) -> bool:
    path, fs = _path(spark, uri)
    return bool(fs.exists(path))


def directories(spark: SparkSession, uri: str) -> list[str]:
    """Names of the directories directly under `uri` ([] if it does not exist)."""
    path, fs = _path(spark, uri)
    if not fs.exists(path):
        return []
    return [status.getPath().getName() for status in fs.listStatus(path) if status.isDirectory()]


def write_bytes(spark: SparkSession, uri: str, data: bytes, *, overwrite: bool = False) -> None:
    """Create the file; fails if it exists unless `overwrite` (a pointer that moves, never a model version)."""
    path, fs = _path(spark, uri)
    stream = fs.create(path, overwrite)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    path, fs = _path(spark, uri)
    if not fs.exists(path):
        raise MissingFile(f"{uri} does not exist")
    stream = fs.open(path)
    try:  # a byte[] returned by a Java method arrives in Python as a bytearray (commons-io ships with Spark)
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()
