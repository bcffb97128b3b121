import pytest

from passerelle.cdm.url import parse_store_url
from passerelle.errors import InvalidStoreURL


def test_duckdb_url_keeps_absolute_path():
    url = parse_store_url("duckdb:///tmp/x/cdm.duckdb")
    assert url.scheme == "duckdb"
    assert url.path == "/tmp/x/cdm.duckdb"


def test_postgres_url_parts_and_schema():
    url = parse_store_url("postgresql://postgres:secret@127.0.0.1:5432/test?schema=cdm2")
    assert (url.host, url.port, url.user, url.database, url.schema) == (
        "127.0.0.1",
        5432,
        "postgres",
        "test",
        "cdm2",
    )
    assert "secret" not in url.redacted()
    assert "secret" not in repr(url)


def test_postgres_default_schema_is_cdm():
    assert parse_store_url("postgres://h/db").schema == "cdm"


def test_spark_url_with_master():
    url = parse_store_url("spark:///data/wh?master=local[4]")
    assert url.path == "/data/wh"
    assert url.param("master") == "local[4]"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("mysql://h/db", "unknown store scheme 'mysql'"),
        ("cdm.duckdb", "has no scheme"),
        ("postgresql://h", "needs a database"),
        ("postgresql://h/db?schema=a;drop", "not a plain SQL identifier"),
        ("duckdb://", "needs a path"),
    ],
)
def test_bad_urls_name_the_problem(bad, message):
    with pytest.raises(InvalidStoreURL, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_store_url(bad)
