"""INTERIM — a deliberately tiny study runner used only until `passerelle.query` lands.

The federation code never depends on it directly: `passerelle.federation.study` prefers the
study language's parser and `engine_for(store)`, then its in-memory reference engine, and falls
back to this module only when neither exists. It understands a subset of the spec
(one entry domain with concepts and descendants, occurrence first|all, `count` analyses by sex,
age band and index year) and writes portable SQL with concept ids as typed integer literals.
Delete it once the study language is in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from passerelle.cdm.stores.base import Store
from passerelle.federation.errors import Refused
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

NAME = "interim"

# domain -> (table, concept column, start date column)
DOMAINS = {
    "condition": ("condition_occurrence", "condition_concept_id", "condition_start_date"),
    "drug": ("drug_exposure", "drug_concept_id", "drug_exposure_start_date"),
    "drug_era": ("drug_era", "drug_concept_id", "drug_era_start_date"),
    "condition_era": ("condition_era", "condition_concept_id", "condition_era_start_date"),
    "procedure": ("procedure_occurrence", "procedure_concept_id", "procedure_date"),
    "measurement": ("measurement", "measurement_concept_id", "measurement_date"),
    "observation": ("observation", "observation_concept_id", "observation_date"),
    "visit": ("visit_occurrence", "visit_concept_id", "visit_start_date"),
}


@dataclass(frozen=True)
class InterimStudy:
    name: str
    domain: str
    concepts: tuple[int, ...]
    descendants: bool
    occurrence: str
    analyses: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (name, persons|entries, by)


def _bad(msg: str) -> Refused:
    return Refused(
        f"study not supported by the interim runner: {msg}", code="invalid_study", status=422
    )


def parse(spec: dict[str, Any]) -> InterimStudy:
    try:
        entry = spec["cohort"]["entry"]
        domains = [d for d in entry if d in DOMAINS]
        if len(domains) != 1:
            raise _bad("cohort.entry needs exactly one domain")
        domain = domains[0]
        cs = entry[domain]
        concepts = tuple(int(c) for c in cs["concepts"])
        occurrence = entry.get("occurrence", "all")
        if occurrence not in ("all", "first"):
            raise _bad("cohort.entry.occurrence must be all or first")
        extra = set(spec["cohort"]) - {"entry"}
        if extra:
            raise _bad(f"cohort.{sorted(extra)[0]}")
        analyses = []
        for a in spec.get("analyses", []):
            if set(a) - {"name", "count", "by"} or a.get("count") not in ("persons", "entries"):
                raise _bad("only count analyses")
            by = tuple(a.get("by", []))
            for b in by:
                if not (b in ("sex", "index_year") or (isinstance(b, dict) and "age_band" in b)):
                    raise _bad(f"breakdown {b}")
            analyses.append((str(a["name"]), a["count"], by))
        return InterimStudy(
            str(spec.get("study", "study")),
            domain,
            concepts,
            bool(cs.get("descendants")),
            occurrence,
            tuple(analyses),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(f"malformed spec ({type(exc).__name__})") from None


def _breakdown(b: Any) -> tuple[str, str]:
    if b == "sex":
        return "sex", "p.gender_concept_id"
    if b == "index_year":
        return "index_year", "CAST(EXTRACT(YEAR FROM e.index_date) AS INTEGER)"
    band = int(b["age_band"])
    age = "(CAST(EXTRACT(YEAR FROM e.index_date) AS INTEGER) - p.year_of_birth)"
    return "age_band", f"(CAST(FLOOR({age} / {band}.0) AS INTEGER) * {band})"


def execute(store: Store, study: InterimStudy) -> StudyResult:
    table, concept_col, date_col = DOMAINS[study.domain]
    ids = ", ".join(str(int(c)) for c in study.concepts)
    concept_set = f"SELECT concept_id FROM {store.qualified('concept')} WHERE concept_id IN ({ids})"
    if study.descendants:
        concept_set += (
            f" UNION SELECT descendant_concept_id FROM {store.qualified('concept_ancestor')}"
            f" WHERE ancestor_concept_id IN ({ids})"
        )
    events = (
        f"SELECT x.person_id, x.{date_col} AS index_date FROM {store.qualified(table)} x"
        f" WHERE x.{concept_col} IN ({concept_set})"
    )
    if study.occurrence == "first":
        events = (
            f"SELECT person_id, min(index_date) AS index_date FROM ({events}) f GROUP BY person_id"
        )
    tables = []
    for name, what, by in study.analyses:
        dims = [_breakdown(b) for b in by]
        select_dims = "".join(f"{expr} AS {col}, " for col, expr in dims)
        measure = "count(DISTINCT e.person_id)" if what == "persons" else "count(*)"
        sql = (
            f"SELECT {select_dims}{measure} AS n FROM ({events}) e"
            f" JOIN {store.qualified('person')} p ON p.person_id = e.person_id"
        )
        if dims:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(dims)))
        rows = [tuple(int(v) if v is not None else None for v in r) for r in store.query(sql).rows]
        columns = (
            *tuple(ResultColumn(col, "dimension") for col, _ in dims),
            ResultColumn(what, "count"),
        )
        tables.append(AggregateTable(name, "count", columns, rows))
    return StudyResult(study.name, f"{store.engine}+{NAME}", tables)
