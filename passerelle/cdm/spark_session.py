"""Starting (once per process) the Spark session a spark:// store uses."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any

from passerelle.config import Settings
from passerelle.errors import StoreUnavailable

_lock = threading.Lock()
_sessions: dict[str, Any] = {}


def java_available() -> bool:
    return bool(os.environ.get("JAVA_HOME") or shutil.which("java"))


def get_spark(master: str, settings: Settings) -> Any:
    """A SparkSession for `master` (local[N], spark://host:port, yarn, or sc://host:port)."""
    with _lock:
        if master in _sessions:
            return _sessions[master]
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise StoreUnavailable("spark:// stores need PySpark: pip install pyspark") from None
        if master.startswith("sc://"):
            try:
                builder = SparkSession.builder.remote(master)
                session = builder.getOrCreate()
            except Exception as exc:
                raise StoreUnavailable(
                    f"cannot reach Spark Connect at {master} ({type(exc).__name__}); "
                    "the client needs pyspark[connect]"
                ) from None
            _sessions[master] = session
            return session
        if master.startswith("local"):
            # Local mode talks only to itself: keep every socket on the loopback interface.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        if not java_available():
            raise StoreUnavailable("spark:// stores need Java (JAVA_HOME or java on PATH)")
        builder = (
            SparkSession.builder.master(master)
            .appName("passerelle")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
            .config("spark.sql.adaptive.enabled", "true")
            .config("spark.driver.memory", settings.spark_driver_memory)
            .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
            .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        )
        if master.startswith("local"):
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1"
            )
        try:
            session = builder.getOrCreate()
        except Exception as exc:
            raise StoreUnavailable(f"cannot start Spark ({master}): {type(exc).__name__}") from None
        session.sparkContext.setLogLevel("ERROR")
        _sessions[master] = session
        return session
