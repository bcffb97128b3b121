"""The demo's hospitals: FHIR NDJSON generated, then ingested through the real FHIR pipeline.

Per hospital, under `<data_dir>/demo/<node>/`: `fhir/` (the Bulk NDJSON export), `cdm.duckdb`
(its CDM store: the demo vocabulary loaded first, then `passerelle.ingest.service.ingest_fhir`)
and `quarantine.ndjson` (what the ingest refused: empty for the demo). The web process gets a
store holding only the vocabulary (`<data_dir>/demo/vocabulary.duckdb`) for its concept
search, since each hospital's DuckDB file belongs to its node process.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from passerelle.cdm.load import load_folder
from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import open_store
from passerelle.config import Settings
from passerelle.demo import vocabulary as v
from passerelle.demo.fhir import FhirConfig, Hospital, write_ndjson

VOCABULARY_TABLES = (
    "concept",
    "concept_ancestor",
    "concept_relationship",
    "vocabulary",
    "domain",
    "concept_class",
    "relationship",
)


@dataclass(frozen=True)
class HospitalBuild:
    hospital: Hospital
    folder: Path
    store_url: str
    resources: dict[str, int]
    loaded: dict[str, int]
    rows: dict[str, int]
    quarantined: int
    unmapped_records: int
    coverage: tuple[dict[str, object], ...] = ()

    @property
    def ok(self) -> bool:
        return self.quarantined == 0 and sum(self.loaded.values()) > 0


def demo_root(data_dir: Path) -> Path:
    return data_dir.resolve() / "demo"


def write_vocabulary_csv(folder: Path) -> None:
    """The demo vocabulary's seven tables as CDM CSV files (what `load_folder` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = v.vocabulary_rows()
    for name in VOCABULARY_TABLES:
        columns = TABLES_BY_NAME[name].column_names
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(columns)
            for row in rows[name]:
                out.writerow([row.get(c) for c in columns])


def fresh_store_with_vocabulary(path: Path, vocab_csv: Path) -> str:
    """A new DuckDB store at `path` (an older file is removed) holding the demo vocabulary."""
    for old in (path, path.with_name(path.name + ".wal")):
        old.unlink(missing_ok=True)
    url = f"duckdb:///{path}"
    with open_store(url) as store:
        store.init()
        result = load_folder(store, vocab_csv, replace=True)
    if not result.ok:
        failed = ", ".join(t.table for t in result.failed)
        raise RuntimeError(f"the demo vocabulary did not load ({failed})")
    return url


def build_hospital(
    hospital: Hospital,
    root: Path,
    vocab_csv: Path,
    settings: Settings,
    n_persons: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> HospitalBuild:
    from passerelle.ingest.service import ingest_fhir

    folder = root / hospital.node
    fhir_dir = folder / "fhir"
    say = progress or (lambda _msg: None)
    say(f"{hospital.node}: writing FHIR NDJSON ({n_persons:,} patients)")
    resources = write_ndjson(FhirConfig(hospital, n_persons, seed), fhir_dir)
    url = fresh_store_with_vocabulary(folder / "cdm.duckdb", vocab_csv)
    quarantine = folder / "quarantine.ndjson"
    quarantine.unlink(missing_ok=True)
    say(f"{hospital.node}: ingesting {sum(resources.values()):,} resources")
    report = ingest_fhir(
        [fhir_dir], url, site=hospital.node, quarantine=quarantine, settings=settings
    )
    return HospitalBuild(
        hospital,
        folder,
        url,
        resources,
        dict(report.loaded),
        dict(report.rows),
        report.quarantine_total,
        report.unmapped_records,
        tuple(report.coverage),
    )
