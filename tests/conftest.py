"""Shared fixtures: where the shared data is, and the real servers the tests use.

Under PASSERELLE_STRICT_TESTS=1 (set by .ci/run) a missing PostgreSQL, Java/Spark or
../shared/data fails the run instead of skipping; on a user's clone they skip with a reason.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PASSERELLE_SHARED_DATA", ROOT.parent / "shared" / "data"))
STRICT = os.environ.get("PASSERELLE_STRICT_TESTS") == "1"
POSTGRES_URL = os.environ.get("PASSERELLE_TEST_POSTGRES_URL", "")

# The app database's fixtures (app_db_url on SQLite and PostgreSQL, db, ctx, seeded, ...).
pytest_plugins = ["tests.fixtures.appdb"]


def missing(reason: str) -> None:
    """Skip, or fail under strict mode, because something the test needs is absent."""
    if STRICT:
        pytest.fail(f"PASSERELLE_STRICT_TESTS=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        missing(f"shared test data {path} is absent")
    return path


@pytest.fixture(scope="session")
def gibleed_dir() -> Path:
    return shared("eunomia-gibleed", "csv")


def postgres_admin_url() -> str:
    if not POSTGRES_URL:
        missing(
            "PASSERELLE_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    import psycopg

    from passerelle.cdm.url import parse_store_url

    try:
        with psycopg.connect(parse_store_url(POSTGRES_URL).postgres_conninfo()):
            pass
    except psycopg.OperationalError as exc:
        missing(f"PostgreSQL at {POSTGRES_URL} is unreachable: {str(exc).strip().splitlines()[-1]}")
    return POSTGRES_URL


@pytest.fixture
def postgres_store_url():
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    base = postgres_admin_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    url = (
        f"{base.split('?')[0]}{sep}schema={schema}"
        if "schema=" in base
        else f"{base}{sep}schema={schema}"
    )
    yield url
    import psycopg

    from passerelle.cdm.url import parse_store_url

    with psycopg.connect(parse_store_url(base).postgres_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def spark_available() -> None:
    import shutil

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        missing("Java is not installed (Spark needs it)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing("PySpark is not installed")


@pytest.fixture
def duckdb_store_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'cdm.duckdb'}"


@pytest.fixture
def spark_store_url(tmp_path) -> str:
    spark_available()
    return f"spark:///{tmp_path / 'warehouse'}"


ENGINES = ("duckdb", "postgres", "spark")


@pytest.fixture(
    params=[
        pytest.param("duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
    ]
)
def store_url(request, tmp_path) -> str:
    """A fresh, empty store URL on each of the three engines."""
    if request.param == "duckdb":
        return request.getfixturevalue("duckdb_store_url")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_store_url")
    return request.getfixturevalue("spark_store_url")
