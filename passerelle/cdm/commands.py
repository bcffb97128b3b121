"""`passerelle cdm ...`: create a CDM store, load OMOP CSV exports, count rows."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.config import get_settings

app = typer.Typer(help="OMOP CDM v5.4 stores: create, load, count.", no_args_is_help=True)
console = Console(soft_wrap=True)

StoreOption = typer.Option(
    None, "--store", "-s", help="Store URL (duckdb:///…, postgresql://…, spark:///…)."
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def store_url(store: str | None) -> str:
    return store or get_settings().default_store_url()


@app.command("init")
def init(
    store: str = StoreOption,
    enforce_keys: bool = typer.Option(
        False,
        "--enforce-keys",
        help="Create primary keys as constraints (a load with a duplicate key then fails).",
    ),
) -> None:
    """Create the 39 CDM v5.4 tables with their types, key and indexes for the engine."""
    with open_store(store_url(store)) as st:
        created = st.init(enforce_keys=enforce_keys)
    console.print(
        f"{st.url.redacted()}: created {len(created)} table(s)"
        + ("" if created else " (all 39 already exist)")
    )


@app.command("load")
def load(
    folder: Path = typer.Argument(..., help="Folder of OMOP CSV files (.csv or .csv.gz)."),
    store: str = StoreOption,
    replace: bool = typer.Option(
        False, "--replace", help="Replace the rows of tables already loaded."
    ),
    report: Path = typer.Option(None, "--report", help="Write the load report as JSON here."),
) -> None:
    """Bulk-load a folder of OMOP CSV files (Athena or Eunomia format, CDM v5.3 or v5.4)."""
    with (
        open_store(store_url(store)) as st,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<24}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def hook(table: str, event: str) -> None:
            if event == "start":
                tasks[table] = progress.add_task(table, total=1, status="loading")
            else:
                progress.update(
                    tasks[table], completed=1, status="ok" if event == "done" else "FAILED"
                )

        result = load_folder(st, folder, replace=replace, progress=hook)
    for t in result.loaded:
        extra = " (v5.3 mapped to v5.4)" if t.cdm_version == "5.3" else ""
        console.print(f"  {t.table:<24} {t.rows:>12,} rows{extra}")
        if t.duplicate_keys:
            console.print(
                f"  [yellow]warning[/] {t.table}: {t.duplicate_keys:,} row(s) repeat a primary-key value"
            )
    for u in result.skipped:
        console.print(f"  [yellow]skipped[/] {u.path.name}: {u.reason}")
    for t in result.failed:
        console.print(
            f"  [red]failed[/]  {t.table} ({t.file}): {t.error_count} bad row(s), nothing loaded"
        )
        for e in t.errors[:10]:
            console.print(f"          {e}", highlight=False)
    if report:
        report.write_text(json.dumps(result.to_dict(), indent=2))
    if not result.ok:
        raise typer.Exit(1)


@app.command("counts")
def counts(
    store: str = StoreOption,
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
) -> None:
    """Print the row count of every CDM table."""
    with open_store(store_url(store)) as st:
        result = st.counts()
    if format == OutputFormat.json:
        typer.echo(json.dumps(result))
        return
    table = RichTable(title=f"CDM row counts — {st.url.redacted()}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in result.items():
        table.add_row(name, "missing" if n is None else f"{n:,}")
    console.print(table)
