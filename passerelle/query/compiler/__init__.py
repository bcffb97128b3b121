"""Compiling the study model to SQL with sqlglot.

    compile_study(study, "duckdb") -> str

returns a script: one self-contained SELECT per analysis (in the study's order), each
preceded by a ``-- analysis N: kind`` comment and ended by ``;``. Any dialect sqlglot writes
is accepted; duckdb, postgres and spark have their own small compiler classes
(`dialects.py`), other dialects use sqlglot's transpilation of the neutral expressions.
"""

from __future__ import annotations

from sqlglot.dialects.dialect import Dialect

from passerelle.errors import Unsupported
from passerelle.query import model as m
from passerelle.query.compiler.base import BaseCompiler, TableNamer
from passerelle.query.compiler.dialects import COMPILERS

ALIASES = {"postgresql": "postgres", "pg": "postgres", "sparksql": "spark"}


def compiler_for(dialect: str, qualify: TableNamer | None = None) -> BaseCompiler:
    name = ALIASES.get(dialect.lower(), dialect.lower())
    try:
        Dialect.get_or_raise(name)
    except ValueError:
        raise Unsupported(f"sqlglot writes no dialect named {dialect!r}") from None
    cls = COMPILERS.get(name, BaseCompiler)
    return cls(qualify=qualify, dialect=name)


def compile_study(study: m.Study, dialect: str, qualify: TableNamer | None = None) -> str:
    """The study as one SQL script in `dialect` (see the module docstring)."""
    return compiler_for(dialect, qualify).script(study)


__all__ = ["BaseCompiler", "compile_study", "compiler_for"]
