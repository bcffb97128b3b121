"""Service functions behind the `ingest` commands (the CLI is a thin adapter over them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from passerelle.cdm.stores import open_store
from passerelle.config import Settings, get_settings
from passerelle.ingest.ids import Pseudonymiser, check_site, load_or_create_key
from passerelle.ingest.pipeline import FhirIngest, IngestReport, Progress


def default_quarantine_path(settings: Settings, site: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.data_dir / "quarantine" / f"{site}-{stamp}.ndjson"


def ingest_fhir(
    paths: list[Path],
    store_url: str,
    site: str = "default",
    quarantine: Path | None = None,
    batch_size: int = 20_000,
    progress: Progress | None = None,
    settings: Settings | None = None,
    workers: int = 1,
) -> IngestReport:
    settings = settings or get_settings()
    check_site(site)
    pseudo = Pseudonymiser(load_or_create_key(settings.data_dir, site))
    quarantine = quarantine or default_quarantine_path(settings, site)
    with open_store(store_url, settings) as store:
        run = FhirIngest(store, site, pseudo, quarantine, batch_size, progress, workers)
        return run.run(paths)


def exit_code(report: Any, strict: bool) -> int:
    """0, or 1 when nothing loaded, or (with --strict) when anything was quarantined."""
    loaded = sum(report.loaded.values()) if hasattr(report, "loaded") else 0
    if loaded == 0:
        return 1
    if strict and report.quarantine_total:
        return 1
    return 0
