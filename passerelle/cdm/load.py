"""Loading a folder of OMOP CSV files into a store: one atomic load per table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from passerelle.cdm import csvfiles
from passerelle.cdm.csvfiles import CsvFile, UnknownFile
from passerelle.cdm.stores.base import RowError, Store, TableLoad
from passerelle.errors import LoadRefused, PasserelleError


@dataclass
class FolderLoad:
    loaded: list[TableLoad] = field(default_factory=list)
    failed: list[TableLoad] = field(default_factory=list)
    skipped: list[UnknownFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "loaded": [
                {
                    "table": t.table,
                    "file": t.file,
                    "rows": t.rows,
                    "cdm_version": t.cdm_version,
                    "ignored_columns": list(t.ignored_columns),
                    "duplicate_keys": t.duplicate_keys,
                    "seconds": round(t.seconds, 3),
                }
                for t in self.loaded
            ],
            "failed": [
                {
                    "table": t.table,
                    "file": t.file,
                    "error_count": t.error_count,
                    "errors": [str(e) for e in t.errors],
                }
                for t in self.failed
            ],
            "skipped": [{"file": u.path.name, "reason": u.reason} for u in self.skipped],
        }


ProgressHook = Callable[[str, str], None]  # (table, event) with event in start|done|failed


def plan_folder(folder: Path) -> tuple[list[CsvFile], list[UnknownFile], list[TableLoad]]:
    """Describe every loadable file; files that cannot even be planned fail up front."""
    paths, unknown = csvfiles.discover(folder)
    plans: list[CsvFile] = []
    failed: list[TableLoad] = []
    seen: dict[str, Path] = {}
    for path in paths:
        name = csvfiles.table_name_of(path)
        if name in seen:
            unknown.append(UnknownFile(path, f"a second file for table {name} ({seen[name].name})"))
            continue
        seen[name] = path
        try:
            plans.append(csvfiles.describe(path))
        except PasserelleError as exc:
            failed.append(
                TableLoad(name, path.name).fail(
                    [RowError(path.name, 1, None, str(exc).split(": ", 1)[-1])]
                )
            )
    return plans, unknown, failed


def load_folder(
    store: Store, folder: Path, replace: bool = False, progress: ProgressHook | None = None
) -> FolderLoad:
    plans, unknown, failed = plan_folder(folder)
    if not plans and not failed:
        raise LoadRefused(f"{folder}: no CSV file names a CDM v5.4 table")
    store.init()
    if not replace:
        counts = store.counts([p.table for p in plans])
        full = [name for name, n in counts.items() if n]
        if full:
            raise LoadRefused(
                f"table(s) {', '.join(full)} already hold rows; loading again needs --replace"
            )
    report = FolderLoad(failed=failed, skipped=unknown)
    for plan in plans:
        if progress:
            progress(plan.table.name, "start")
        result = store.load_csv(plan, replace=replace)
        (report.loaded if result.ok else report.failed).append(result)
        if progress:
            progress(plan.table.name, "done" if result.ok else "failed")
    return report
