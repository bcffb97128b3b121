"""`passerelle ingest fhir|csv` and `passerelle quality`: thin adapters over the services."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from passerelle.config import get_settings

app = typer.Typer(
    help="Ingest FHIR R4 or mapped CSV exports into a CDM store.", no_args_is_help=True
)
console = Console(stderr=True)

StoreOption = typer.Option(
    None, "--store", "-s", help="Store URL (duckdb:///…, postgresql://…, spark:///…)."
)


def _store(url: str | None) -> str:
    return url or get_settings().default_store_url()


def _progress() -> tuple[Progress, Callable[[int, str], None]]:
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[n]:,} resources"),
        TextColumn("{task.fields[rate]:,.0f} resources/s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("reading", n=0, rate=0.0)
    started = time.perf_counter()

    def hook(n: int, name: str) -> None:
        elapsed = max(time.perf_counter() - started, 1e-6)
        bar.update(task, description=name[:40], n=n, rate=n / elapsed)

    return bar, hook


@app.command("fhir")
def fhir(
    paths: list[Path] = typer.Argument(
        ..., help="Bundles (.json[.gz]) / NDJSON (.ndjson[.gz]), files or folders."
    ),
    store: str = StoreOption,
    site: str = typer.Option(
        "default", "--site", help="Site name: part of every id and of the pseudonym key."
    ),
    report: Path = typer.Option(None, "--report", help="Write the ingest report as JSON here."),
    quarantine: Path = typer.Option(
        None, "--quarantine", help="Quarantine file (NDJSON); default under the data dir."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Exit non-zero when any record is quarantined."
    ),
    batch_size: int = typer.Option(20_000, "--batch-size", help="Resources per atomic commit."),
    workers: int = typer.Option(
        1, "--workers", help="Processes mapping bundle files in parallel (self-contained bundles)."
    ),
) -> None:
    """Map FHIR R4 resources to OMOP CDM rows (see docs/fhir-to-omop.md)."""
    from passerelle.ingest.service import exit_code, ingest_fhir

    bar, hook = _progress()
    with bar:
        result = ingest_fhir(
            paths, _store(store), site, quarantine, batch_size, hook, workers=workers
        )
    _summary(result.to_dict(), report)
    raise typer.Exit(exit_code(result, strict))


@app.command("csv")
def csv(
    folder: Path = typer.Argument(..., help="Folder of CSV files."),
    mapping: str = typer.Option(
        ..., "--mapping", help="Built-in mapping name (synthea) or a YAML file."
    ),
    store: str = StoreOption,
    site: str = typer.Option(
        "default", "--site", help="Site name: part of every id and of the pseudonym key."
    ),
    report: Path = typer.Option(None, "--report", help="Write the ingest report as JSON here."),
) -> None:
    """Map CSV exports to CDM rows with a declarative mapping file (docs/fhir-to-omop.md)."""
    from passerelle.ingest.csvmap import ingest_csv

    result = ingest_csv(folder, mapping, _store(store), site)
    _summary(result, report)
    raise typer.Exit(0 if sum(result["rows_per_table"].values()) else 1)


def _summary(data: dict, report: Path | None) -> None:
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(data, indent=2, default=str))
    rows = data.get("rows_per_table", {})
    console.print(
        f"{data.get('resources', sum(rows.values())):,} read · "
        + " · ".join(f"{t} {n:,}" for t, n in rows.items())
    )
    if data.get("quarantined"):
        console.print(
            f"[yellow]{data['quarantined']:,} quarantined[/] → {data.get('quarantine_file')}"
        )
    if "vocabulary_loaded" in data and not data["vocabulary_loaded"]:
        console.print(
            "[yellow]no vocabulary in the store: every code is unmapped (concept_id 0)[/]"
        )


def quality(
    store: str = StoreOption,
    out: Path = typer.Option(..., "--out", help="report.html or report.json"),
) -> None:
    """Data-quality report (conformance, completeness, plausibility, vocabulary coverage)."""
    from passerelle.ingest.quality.service import write_report

    summary = write_report(_store(store), out)
    console.print(f"{summary['passed']}/{summary['checks']} checks passed → {out}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ingest")
    root.command("quality")(quality)
