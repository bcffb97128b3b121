"""`passerelle quality`: run the checks and write report.json or report.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from passerelle.cdm.stores import open_store
from passerelle.errors import UserError
from passerelle.ingest.quality.html import render_html
from passerelle.ingest.quality.run import run_checks


def write_report(store_url: str, out: Path) -> dict[str, Any]:
    suffix = out.suffix.lower()
    if suffix not in (".html", ".json"):
        raise UserError("--out must end in .html or .json")
    with open_store(store_url) as store:
        report = run_checks(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        out.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        out.write_text(render_html(report))
    return report.summary()
