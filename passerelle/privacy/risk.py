"""Re-identification risk of a released extract, as JSON and HTML.

For the equivalence classes of the released records (sizes f_j over n records, J classes):

- prosecutor risk (the attacker knows the person is in the extract): highest 1 / min f_j,
  average J / n, and the share of records whose risk 1 / f_j exceeds the threshold;
- journalist risk (the attacker knows the person is in the population the extract came from):
  with population class sizes F_j, highest 1 / min F_j; without a population it is bounded by
  the prosecutor risk, and the report says it used that bound;
- marketer risk (expected share re-identified when linking everyone): J / n, or with a
  population sum_j f_j / F_j / n;
- information loss: the search's generalisation loss (0 = exact, 1 = all withheld), per
  quasi-identifier, the share of suppressed records, discernibility (sum f_j^2 plus n per
  suppressed record) and the normalised average class size C_avg = (n / J) / k;
- the class-size distribution (classes and records per size bucket).

Definitions follow El Emam, *Guide to the De-Identification of Personal Health Information*
(2013) and ARX's risk model.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from passerelle.privacy.extract import ExtractResult


@dataclass(frozen=True)
class RiskReport:
    data: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(self.data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        js = folder / "risk-report.json"
        page = folder / "risk-report.html"
        js.write_bytes(self.to_json())
        page.write_text(render_html(self.data), encoding="utf-8")
        return js, page


def _buckets(sizes: np.ndarray, k: int) -> list[dict[str, Any]]:
    edges = [1, k, 2 * k, 5 * k, 10 * k, 100 * k, 1000 * k]
    out = []
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        sel = sizes >= low if high is None else (sizes >= low) & (sizes < high)
        if not sel.any():
            continue
        out.append(
            {
                "sizes": f"{low}+" if high is None else f"{low}-{high - 1}",
                "classes": int(sel.sum()),
                "records": int(sizes[sel].sum()),
            }
        )
    return out


def risk_report(
    result: ExtractResult,
    threshold: float | None = None,
    population_sizes: np.ndarray | None = None,
) -> RiskReport:
    """The risk report of an extract; `threshold` defaults to 1/k."""
    sizes = np.asarray(result.evaluation.class_sizes, dtype=np.int64)
    n = int(sizes.sum())
    classes = len(sizes)
    k = result.k
    thr = 1.0 / k if threshold is None else threshold
    suppressed = result.records_in - n
    if n:
        per_record = 1.0 / sizes
        prosecutor = {
            "highest": float(per_record.max()),
            "average": classes / n,
            "records_above_threshold": float(sizes[per_record > thr].sum() / n),
        }
    else:
        prosecutor = {"highest": 0.0, "average": 0.0, "records_above_threshold": 0.0}
    if population_sizes is not None and n:
        pop = np.asarray(population_sizes, dtype=np.int64)
        journalist = {"highest": float(1.0 / pop.min()), "bound_used": False}
        marketer = float((sizes / pop).sum() / n)
    else:
        journalist = {"highest": prosecutor["highest"], "bound_used": True}
        marketer = prosecutor["average"]
    data = {
        "records_in": result.records_in,
        "records_released": n,
        "k": k,
        "l": result.l,
        "risk_threshold": thr,
        "generalisation": result.node,
        "prosecutor_risk": prosecutor,
        "journalist_risk": journalist,
        "marketer_risk": marketer,
        "information_loss": {
            "generalisation_loss": result.loss,
            "per_quasi_identifier": result.per_qi_loss,
            "suppressed_records": suppressed,
            "suppressed_share": suppressed / result.records_in if result.records_in else 0.0,
            "discernibility": int((sizes**2).sum()) + suppressed * result.records_in,
            "average_class_size_ratio": (n / classes / k) if classes else 0.0,
        },
        "equivalence_classes": {
            "count": classes,
            "smallest": int(sizes.min()) if classes else 0,
            "median": float(np.median(sizes)) if classes else 0.0,
            "largest": int(sizes.max()) if classes else 0,
            "distribution": _buckets(sizes, k),
        },
        "search": {"evaluated_nodes": result.evaluated_nodes},
    }
    return RiskReport(data)


def render_html(data: dict[str, Any]) -> str:
    e = html.escape

    def rows(mapping: dict[str, Any]) -> str:
        return "".join(
            f"<tr><th>{e(str(key))}</th><td>{e(_fmt(value))}</td></tr>"
            for key, value in mapping.items()
        )

    dist = "".join(
        f"<tr><td>{e(b['sizes'])}</td><td>{b['classes']}</td><td>{b['records']}</td></tr>"
        for b in data["equivalence_classes"]["distribution"]
    )
    loss = dict(data["information_loss"])
    per_qi = loss.pop("per_quasi_identifier")
    summary = {
        "records in": data["records_in"],
        "records released": data["records_released"],
        "k": data["k"],
        "l": data["l"],
        "risk threshold": data["risk_threshold"],
        "marketer risk": data["marketer_risk"],
    }
    journalist = dict(data["journalist_risk"])
    note = (
        "<p>No population table was given: journalist risk is bounded by prosecutor risk.</p>"
        if journalist.pop("bound_used")
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Extract re-identification risk</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}
table{{border-collapse:collapse;margin:1rem 0}}th,td{{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left}}</style></head><body>
<h1>Extract re-identification risk</h1>
<table>{rows(summary)}</table>
<h2>Prosecutor risk</h2><table>{rows(data["prosecutor_risk"])}</table>
<h2>Journalist risk</h2><table>{rows(journalist)}</table>{note}
<h2>Generalisation</h2><table>{rows(data["generalisation"])}</table>
<h2>Information loss</h2><table>{rows(loss)}</table><table>{rows(per_qi)}</table>
<h2>Equivalence classes</h2>
<table><tr><th>size</th><th>classes</th><th>records</th></tr>{dist}</table>
</body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
