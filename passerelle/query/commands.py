"""`passerelle study ...`: validate, compile, run a study spec; import an ATLAS cohort.

Thin adapters over `parse`, `atlas`, the compiler and the engines. `study run` is for the
steward who already holds the data: it prints results without disclosure control.
"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from passerelle.errors import UserError
from passerelle.query.result import StudyResult

if TYPE_CHECKING:
    from passerelle.query.model import Study

study_app = typer.Typer(
    help="The study language: validate, compile and run specs; import ATLAS cohorts.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

StoreOption = typer.Option(
    None, "--store", "-s", help="Store URL (duckdb:///…, postgresql://…, spark:///…)."
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class EngineChoice(StrEnum):
    sql = "sql"
    reference = "reference"


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")


def _store_url(store: str | None) -> str:
    from passerelle.config import get_settings

    return store or get_settings().default_store_url()


def _load(spec: Path) -> Study:
    from passerelle.query.parse import parse_study

    if not spec.exists():
        raise UserError(f"{spec}: no such file")
    return parse_study(spec.read_text(encoding="utf-8"))


@study_app.command("validate")
def validate(
    spec: Path = typer.Argument(..., help="Study spec (YAML or JSON)."),
    store: str = typer.Option(
        None, "--store", "-s", help="Also check concept ids against this store's vocabulary."
    ),
) -> None:
    """Check a spec: every error with its field path; with --store, unknown concepts as warnings."""
    from passerelle.query.parse import check_concepts

    study = _load(spec)
    console.print(f"{spec}: valid study {study.name!r} with {len(study.analyses)} analyses")
    if store:
        from passerelle.cdm.stores import open_store

        with open_store(store) as st:
            for warning in check_concepts(study, st):
                err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@study_app.command("compile")
def compile_(
    spec: Path = typer.Argument(..., help="Study spec (YAML or JSON)."),
    dialect: str = typer.Option(
        "duckdb", "--dialect", "-d", help="Any SQL dialect SQLGlot writes."
    ),
) -> None:
    """Print the SQL a spec compiles to."""
    study = _load(spec)
    try:
        from passerelle.query.compiler import compile_study
    except ImportError as exc:
        raise UserError(f"the SQL compiler is not available ({exc})") from None
    typer.echo(compile_study(study, dialect))


@study_app.command("run")
def run(
    spec: Path = typer.Argument(..., help="Study spec (YAML or JSON)."),
    store: str = StoreOption,
    engine: EngineChoice = typer.Option(
        EngineChoice.sql,
        "--engine",
        "-e",
        help="sql: the store's own engine; reference: the in-memory reference engine (small data).",
    ),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
    policy: str = typer.Option(
        None,
        "--policy",
        "-p",
        help="Disclosure policy YAML applied to the results (default: the built-in policy); "
        "'none' shows unprotected results, for the local steward only.",
    ),
) -> None:
    """Run a study on a local CDM store; results pass the disclosure policy unless --policy none."""
    from passerelle.cdm.stores import open_store
    from passerelle.privacy.commands import protect_for_cli

    study = _load(spec)
    with open_store(_store_url(store)) as st:
        if engine is EngineChoice.reference:
            from passerelle.query.reference import ReferenceEngine

            result = ReferenceEngine.from_store(st, study).execute(study)
        else:
            try:
                from passerelle.query.engines import engine_for
            except ImportError as exc:
                raise UserError(
                    f"the SQL engines are not available ({exc}); use --engine reference"
                ) from None
            result = engine_for(st).execute(study)
    result, note = protect_for_cli(result, policy)
    _print(result, format, note)


def _print(result: StudyResult, format: OutputFormat, note: str = "") -> None:
    if format is OutputFormat.json:
        out = result.to_dict()
        if any(t.flags for t in result.tables):
            # Released cells only: suppressed ones are null, and each row's flags say why.
            out["flags"] = {
                t.name: {
                    f"{row}:{col}": sorted(flags) for (row, col), flags in sorted(t.flags.items())
                }
                for t in result.tables
                if t.flags
            }
        typer.echo(json.dumps(out, default=_json_default))
        return
    if format is OutputFormat.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for i, table in enumerate(result.tables):
            if i:
                buf.write("\n")
            buf.write(f"# {table.name}\n")
            writer.writerow(table.column_names)
            writer.writerows(["" if v is None else v for v in r] for r in table.sorted_rows())
        typer.echo(buf.getvalue(), nl=False)
        return
    from passerelle.privacy.disclosure import display

    console.print(f"study {result.study!r} on engine {result.engine}; {note}")
    for table in result.tables:
        rt = RichTable(title=table.name, title_justify="left")
        for c in table.columns:
            rt.add_column(c.name, justify="left" if c.type == "string" else "right")
        order = sorted(range(len(table.rows)), key=lambda i: _sort_key(table.rows[i]))
        for i in order:
            rt.add_row(
                *(
                    display(table, i, c.name) if (i, c.name) in table.flags else _cell(v)
                    for c, v in zip(table.columns, table.rows[i], strict=True)
                )
            )
        console.print(rt)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(type(v)), v) for v in row)


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _json_default(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "as_integer_ratio"):
        return float(v)
    return str(v)


@study_app.command("import-atlas")
def import_atlas(
    cohort: Path = typer.Argument(..., help="ATLAS / Circe cohort definition (JSON)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Write the spec here (YAML) instead of printing it."
    ),
    partial: bool = typer.Option(
        False, "--partial", help="Write the spec even when some parts could not be converted."
    ),
) -> None:
    """Convert an ATLAS cohort definition into a spec, naming every part it cannot convert."""
    import yaml

    from passerelle.query.atlas import convert_file

    if not cohort.exists():
        raise UserError(f"{cohort}: no such file")
    conv = convert_file(cohort)
    for note in conv.notes:
        err_console.print(f"[cyan]note:[/] {note}", highlight=False)
    for problem in conv.problems:
        err_console.print(f"[red]not converted:[/] {problem}", highlight=False)
    if conv.problems and not partial:
        err_console.print(
            f"{cohort}: {len(conv.problems)} part(s) could not be converted; no spec written "
            "(--partial writes what converted, with these parts listed)"
        )
        raise typer.Exit(1)
    header = f"# Converted from {cohort.name} by passerelle study import-atlas.\n"
    header += "".join(f"# NOT CONVERTED: {p}\n" for p in conv.problems)
    header += "".join(f"# note: {n}\n" for n in conv.notes)
    text = header + yaml.safe_dump(conv.spec, sort_keys=False, default_flow_style=None, width=100)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}" + (" (partial)" if conv.problems else ""))
    else:
        typer.echo(text, nl=False)
    if conv.problems:
        raise typer.Exit(1)
