"""`passerelle demo`: the whole system on one machine (or, with --cdm-only, one synthetic CDM)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from passerelle.cdm.schema import TABLES
from passerelle.config import Settings, get_settings
from passerelle.demo.build import DemoBuild, build_demo
from passerelle.demo.synthetic import SyntheticConfig
from passerelle.errors import UserError

console = Console()


def demo(
    persons: int = typer.Option(
        None,
        "--persons",
        help="Synthetic patients per hospital (default 1000; 3000 with --cdm-only).",
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    requests: int = typer.Option(
        300, "--requests", help="About how many access requests the history holds."
    ),
    port: int = typer.Option(
        8000, "--port", help="Port of the web application (a free one if it is taken)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Set everything up, exercise it, stop and exit 0 or 1."
    ),
    cdm_only: bool = typer.Option(
        False,
        "--cdm-only",
        help="Only generate the synthetic CDM as CSV and load it into --store (no servers).",
    ),
    store: str = typer.Option(
        None,
        "--store",
        "-s",
        help="With --cdm-only: the store URL (default: the settings' store).",
    ),
) -> None:
    """The whole system on 127.0.0.1: three hospitals (FHIR -> ingest -> CDM), three nodes, the
    hub, the web application, a catalogue and a history of requests. Ctrl-C stops it."""
    settings = get_settings()
    if cdm_only or store:
        _cdm_only(settings, 3000 if persons is None else persons, seed, store)
        return
    if not 1 <= requests <= 5000:
        raise UserError("--requests must be between 1 and 5000")
    from passerelle.demo.fhir import HOSPITALS, FhirConfig
    from passerelle.demo.system import Options

    persons = 1000 if persons is None else persons
    FhirConfig(HOSPITALS[0], persons)  # refuses a bad person count before any work
    options = Options(persons=persons, seed=seed, requests=requests, port=port)
    raise typer.Exit(run_demo(settings, options, check))


def run_demo(settings: Settings, options: Any, check: bool) -> int:
    """Build, start, then wait for Ctrl-C (or, with `check`, exercise and stop); the exit code."""
    from passerelle.demo.check import run_checks
    from passerelle.demo.procs import ProcessFailed, signals_raise_interrupt
    from passerelle.demo.system import build, start

    started = time.monotonic()

    def say(msg: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {msg}", highlight=False)

    procs = None
    with signals_raise_interrupt():
        try:
            system = build(settings, options, say)
            bad = [n for n, b in system.hospitals.items() if not b.ok]
            if bad:
                say(f"[red]ingest refused records[/] at {', '.join(bad)} (see quarantine.ndjson)")
                return 1
            say("starting 3 nodes and the hub (which serves the web application) on 127.0.0.1")
            procs, hub_url, web_url = start(system, check)
            _print_ready(system, hub_url, web_url, procs)
            if check:
                outcomes = run_checks(system, {"hub": hub_url, "web": web_url}, say)
                failed = [o.name for o in outcomes if not o.ok]
                say(f"{len(outcomes) - len(failed)}/{len(outcomes)} checks passed")
                return 1 if failed else 0
            _print_guide(web_url)
            console.print(f"\n[bold green]Passerelle demo: {web_url}[/]  (Ctrl-C stops everything)")
            while True:
                dead = procs.dead()
                if dead:
                    for child in dead:
                        console.print(f"[red]{child.name} stopped[/] (log: {child.log})")
                    return 1
                time.sleep(0.5)
        except ProcessFailed as exc:
            console.print(f"[red]{exc}[/]", highlight=False)
            return 1
        except KeyboardInterrupt:
            console.print("\nstopping the demo's processes")
            return 0 if not check else 1
        finally:
            if procs is not None:
                procs.stop()


def _print_ready(system: Any, hub_url: str, web_url: str, procs: Any) -> None:
    from passerelle.demo.seed import DEMO_PASSWORD

    table = RichTable(title="Processes (logs under " + str(system.root / "logs") + ")")
    for col in ("process", "URL", "pid"):
        table.add_column(col)
    for child in procs.children:
        table.add_row(child.name, child.url, str(child.proc.pid))
    console.print(table)
    logins = RichTable(title=f"Logins (password for all: {DEMO_PASSWORD})")
    logins.add_column("role")
    logins.add_column("organisation")
    logins.add_column("e-mail", no_wrap=True, min_width=40)
    for login in system.seeded.logins:
        logins.add_row(login.role, login.organisation, login.email)
    console.print(logins)
    h = system.history
    if h is not None:
        console.print(
            f"History: {len(h.plans)} requests ({h.played:,} steps through the access services, "
            f"{h.runs} first study runs, {len(h.approvals)} approvals, which the nodes sync). "
            f"Observatory: {web_url}/observatory",
            highlight=False,
        )


def _print_guide(web: str) -> None:
    from passerelle.access.enums import Role
    from passerelle.demo.seed import email_of

    steps = (
        ("the catalogue (public)", f"{web}/catalogue"),
        ("the observatory (public)", f"{web}/observatory"),
        (f"feasibility and requests, as {email_of('genomix', Role.APPLICANT)}", f"{web}/login"),
        (f"the review queue, as {email_of('chu-nord', Role.REVIEWER)}", f"{web}/login"),
        (f"the audit chain, as {email_of('operateur', Role.AUDITOR)}", f"{web}/login"),
        ("the REST API", f"{web}/api/v1/docs"),
    )
    console.print("\nTry:", highlight=False)
    for what, url in steps:
        console.print(f"  {what}: {url}", highlight=False)


def _cdm_only(settings: Settings, persons: int, seed: int, store: str | None) -> None:
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
