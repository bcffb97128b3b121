"""`passerelle demo`: a synthetic hospital CDM, generated, loaded and counted (grown later)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from passerelle.cdm.schema import TABLES
from passerelle.config import get_settings
from passerelle.demo.build import DemoBuild, build_demo
from passerelle.demo.synthetic import SyntheticConfig

console = Console()


def demo(
    persons: int = typer.Option(3000, "--persons", help="Number of synthetic persons."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same CDM."),
    store: str = typer.Option(
        None,
        "--store",
        "-s",
        help="Store URL (default: the settings' store, duckdb:///<data_dir>/cdm.duckdb).",
    ),
    check: bool = typer.Option(
        False, "--check", help="Run the set-up, check it and exit (what the tests use)."
    ),
) -> None:
    """Generate a synthetic OMOP CDM v5.4, load it into the store and print the table counts."""
    settings = get_settings()
    url = store or settings.default_store_url()
    config = SyntheticConfig(n_persons=persons, seed=seed)
    data_dir = Path(settings.data_dir)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        gen = progress.add_task("generating", total=None, status=f"{persons:,} persons")
        load = progress.add_task("loading", total=len(TABLES), status="", start=False)

        def hook(table: str, event: str) -> None:
            if event == "start":
                if not progress.tasks[load].started:
                    progress.update(gen, total=1, completed=1, status=f"{persons:,} persons")
                    progress.start_task(load)
                progress.update(load, status=table)
            else:
                progress.advance(load)
                if event == "failed":
                    console.print(f"  [red]failed[/] {table}")

        result = build_demo(url, data_dir, config, progress=hook)
        progress.update(load, status=f"{len(result.load.loaded)} table(s)")
    _report(result, seed)
    if not result.ok:
        raise typer.Exit(1)


def _report(result: DemoBuild, seed: int) -> None:
    table = RichTable(title=f"Synthetic CDM (seed {seed}) — {result.store}")
    table.add_column("table")
    table.add_column("generated", justify="right")
    table.add_column("in store", justify="right")
    empty = 0
    for name, n in result.generated.items():
        loaded = result.counts.get(name)
        if n == 0 and loaded == 0:
            empty += 1
            continue
        shown = "missing" if loaded is None else f"{loaded:,}"
        style = "" if loaded == n else "red"
        table.add_row(name, f"{n:,}", shown, style=style)
    console.print(table)
    console.print(f"{empty} other CDM table(s) empty. CSV files: {result.folder}", highlight=False)
    for t in result.load.failed:
        console.print(f"[red]failed[/] {t.table} ({t.file}): {t.error_count} bad row(s)")
        for e in t.errors[:10]:
            console.print(f"        {e}", highlight=False)
    for name in result.mismatches:
        console.print(f"[red]count mismatch[/] {name}: the store does not hold what was generated")
