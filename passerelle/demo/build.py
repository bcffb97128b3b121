"""Building the demo store: generate the synthetic CDM, load it, count what arrived.

`passerelle demo` is a thin adapter over `build_demo`; later issues add the hospitals, the
hub and the web application on top of the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passerelle.cdm.load import FolderLoad, ProgressHook, load_folder
from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import open_store
from passerelle.demo.synthetic import SyntheticConfig, generate

DEMO_CSV_FOLDER = "demo-csv"


@dataclass(frozen=True)
class DemoBuild:
    folder: Path
    store: str  # the store URL, password redacted
    generated: dict[str, int]
    load: FolderLoad
    counts: dict[str, int | None]

    @property
    def mismatches(self) -> list[str]:
        """Tables whose row count in the store differs from what was generated."""
        return [t for t, n in self.generated.items() if self.counts.get(t) != n]

    @property
    def ok(self) -> bool:
        return self.load.ok and not self.mismatches


def clear_generated(folder: Path) -> None:
    """Remove the CSV files a previous demo wrote (files named after a CDM table only)."""
    if not folder.is_dir():
        return
    for path in folder.glob("*.csv"):
        if path.stem in TABLES_BY_NAME:
            path.unlink()


def generate_demo_csv(data_dir: Path, config: SyntheticConfig) -> tuple[Path, dict[str, int]]:
    folder = data_dir / DEMO_CSV_FOLDER
    clear_generated(folder)
    return folder, generate(folder, config)


def build_demo(
    store_url: str,
    data_dir: Path,
    config: SyntheticConfig,
    progress: ProgressHook | None = None,
) -> DemoBuild:
    """Generate the synthetic CDM into `<data_dir>/demo-csv/` and load it into the store,
    replacing what the store's CDM tables held."""
    folder, generated = generate_demo_csv(data_dir, config)
    with open_store(store_url) as st:
        result = load_folder(st, folder, replace=True, progress=progress)
        counts = st.counts()
        redacted = st.url.redacted()
    return DemoBuild(folder, redacted, generated, result, counts)
