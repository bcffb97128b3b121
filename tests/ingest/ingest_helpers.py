"""Helpers for the ingest tests: the root conftest's `shared()` / `missing()` (imported by path
under a unique name, since every test folder has its own `conftest` module), and settings
whose data dir is the test's own folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from passerelle.config import Settings

_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def _root():
    name = "passerelle_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _ROOT_CONFTEST)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def shared(*parts: str) -> Path:
    return _root().shared(*parts)


def missing(reason: str) -> None:
    _root().missing(reason)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
