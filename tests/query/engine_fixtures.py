"""The `engine` fixture's runners: every engine runs a study over small data the same way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from enginedata import SmallData

from passerelle.query import model as m
from passerelle.query.engines import engine_for
from passerelle.query.reference import ReferenceEngine
from passerelle.query.result import StudyResult

ENGINE_PARAMS = [
    pytest.param("reference"),
    pytest.param("duckdb"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
]


class Runner:
    """Loads data, runs a study, returns the StudyResult, on one engine."""

    def __init__(self, name: str, small: SmallData | None) -> None:
        self.name = name
        self.small = small
        self._loaded: Any = None
        self._store: Any = None

    def load(self, data: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        if self.small is None:
            self._loaded = ReferenceEngine(data)
        else:
            self._store = self.small.load(data)

    def execute(self, study: m.Study) -> StudyResult:
        if self.small is None:
            return self._loaded.execute(study)
        return engine_for(self._store).execute(study)

    def run(self, data: Mapping[str, Sequence[Mapping[str, Any]]], study: m.Study) -> StudyResult:
        self.load(data)
        return self.execute(study)


def root_conftest() -> Any:
    """tests/conftest.py as pytest imported it (its helpers: missing, postgres_admin_url...)."""
    import sys

    here = Path(__file__).resolve().parent.parent / "conftest.py"
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == here:
            return mod
    raise RuntimeError("tests/conftest.py is not loaded")


def postgres_schema_url() -> tuple[str, str]:
    base = root_conftest().postgres_admin_url()
    schema = f"q_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    return (
        f"{base.split('?')[0]}?schema={schema}"
        if "schema=" in base
        else f"{base}{sep}schema={schema}",
        schema,
    )


def drop_postgres_schema(schema: str) -> None:
    import psycopg

    from passerelle.cdm.url import parse_store_url

    info = parse_store_url(root_conftest().postgres_admin_url()).postgres_conninfo()
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def make_runner(name: str, root: Path) -> Iterator[Runner]:
    """A Runner for engine `name`, its store living under `root` (a generator: cleans up)."""
    if name == "reference":
        yield Runner(name, None)
        return
    if name == "spark":
        root_conftest().spark_available()
    schema = None
    url = None
    if name == "postgres":
        url, schema = postgres_schema_url()
    small = SmallData(name, root, url)
    try:
        yield Runner(name, small)
    finally:
        small.close()
        if schema:
            drop_postgres_schema(schema)
