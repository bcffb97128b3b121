"""Study results a project received through the hub, kept for download.

They are the hub's answers (aggregates already protected at each node) stored as JSON under
`<data_dir>/results/request-<id>/<run>.json`; CSV is made from the merged tables. A run also
appends `study.run` to the audit chain (the observatory's "first result" reads it).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RUN_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9]+$")


@dataclass(frozen=True)
class Run:
    name: str
    study: str
    at: str
    partial: bool
    data: dict[str, Any]


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, request_id: int) -> Path:
        return self.root / f"request-{int(request_id)}"

    def save(self, request_id: int, study_index: int, answer: dict[str, Any], now: datetime) -> str:
        folder = self.folder(request_id)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%S}-{study_index}"
        n = 0
        while (folder / f"{name}.json").exists():
            n += 1
            name = f"{now:%Y%m%dT%H%M%S}-{study_index}{n}"
        record = {"at": now.isoformat(), "study_index": study_index, "answer": answer}
        (folder / f"{name}.json").write_text(json.dumps(record, default=str))
        return name

    def runs(self, request_id: int) -> list[Run]:
        folder = self.folder(request_id)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json"), reverse=True):
            run = self.get(request_id, path.stem)
            if run is not None:
                out.append(run)
        return out

    def get(self, request_id: int, name: str) -> Run | None:
        if not RUN_NAME.match(name):
            return None
        path = self.folder(request_id) / f"{name}.json"
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        answer = record["answer"]
        return Run(
            name,
            str(answer.get("study") or ""),
            record["at"],
            bool(answer.get("partial")),
            record,
        )


def merged_csv(answer: dict[str, Any]) -> str:
    """Every merged table, one after another: a `table` column names each row's table."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for table in answer.get("merged", {}).get("tables", []):
        cols = [c["name"] if isinstance(c, dict) else str(c) for c in table["columns"]]
        w.writerow(["table", *cols])
        for row in table["rows"]:
            w.writerow([table["name"], *["" if v is None else v for v in row]])
    return buf.getvalue()
