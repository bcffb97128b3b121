"""`passerelle catalog ...`: publish, search, profile and export datasets (thin adapters)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from passerelle.access.commands import _read_json, _validated, context

console = Console(soft_wrap=True)
app = typer.Typer(help="The catalogue: datasets, profiles, HealthDCAT-AP.", no_args_is_help=True)


class RdfFormat(StrEnum):
    turtle = "turtle"
    jsonld = "json-ld"


@app.command("add")
def add(file: Path, org_id: int = typer.Option(..., help="The producer organisation.")) -> None:
    """Publish a dataset from a JSON file (the fields of POST /api/v1/datasets)."""
    from passerelle.catalog.schemas import DatasetIn
    from passerelle.catalog.service import Catalog

    d = Catalog(context()).create(None, _validated(DatasetIn, _read_json(file)), org_id)
    console.print(f"dataset {d.id}: {d.title}")


@app.command("search")
def search(q: str = typer.Argument(""), limit: int = 20) -> None:
    """Search published datasets."""
    from passerelle.catalog.service import Catalog

    page = Catalog(context()).search(q, limit=limit)
    table = Table("id", "title", "producer", "domains")
    for d in page.items:
        table.add_row(str(d.id), d.title, d.producer_name, ", ".join(d.domains))
    console.print(table)


@app.command("profile")
def profile(
    dataset_id: int, store: str = typer.Option(None, "--store", help="CDM store URL.")
) -> None:
    """Profile a dataset from a CDM store through disclosure control, and store it."""
    from passerelle.catalog.service import Catalog

    d = Catalog(context()).profile_from_store(None, dataset_id, store)
    console.print_json(data=d.profile)


@app.command("export")
def export(
    fmt: RdfFormat = typer.Option(RdfFormat.turtle, "--format"),
    output: Path = typer.Option(None, "--output", "-o"),
) -> None:
    """The catalogue as HealthDCAT-AP (Turtle or JSON-LD)."""
    from passerelle.catalog.dcat import export as to_rdf
    from passerelle.catalog.service import Catalog

    ctx = context()
    text = to_rdf(Catalog(ctx).all_published(), ctx.settings.public_base_url, fmt.value)
    if output:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        print(text)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="catalog")
