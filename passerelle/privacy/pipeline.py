"""The extract pipeline: cohort rows -> k-anonymous, pseudonymised files and a risk report.

`make_extract(cohort, spec, policy, pseudonymizer)` works on any pyarrow Table of cohort rows
(one row per person or per entry). `cohort_rows(store, study)` builds that table inside the
node from a parsed study spec:

- membership (person, index date, exit date) is computed in SQL on the store by the store's
  own engine (`engine_for(store).cohort_members(study)`, as `study run` runs a study), which
  agrees with the reference engine's `cohort` (tested on every engine); nothing but the members
  reaches Python;
- person attributes come from one query of `person` left-joined to `location`, with no user
  value in the SQL, fetched as Arrow and joined to the members with pyarrow.

Cohort columns: person_id, index_date, exit_date, age (year of index - year of birth),
year_of_birth, sex ("F", "M" or the gender concept id), postal_code (location.zip),
race_concept_id, ethnicity_concept_id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from passerelle.errors import UserError
from passerelle.privacy.extract import ExtractRefused, ExtractResult, ExtractSpec, k_anonymize
from passerelle.privacy.policy import Policy
from passerelle.privacy.pseudonym import Pseudonymizer
from passerelle.privacy.risk import RiskReport, risk_report

SEX_LABELS = {8532: "F", 8507: "M"}
#: person_id, year_of_birth, gender, race, ethnicity concept ids; the location's zip.
PERSON_TYPES = (pa.int64(), pa.int64(), pa.int64(), pa.int64(), pa.int64(), pa.string())


@dataclass
class Extract:
    table: pa.Table  # pseudonymised, generalised, suppressed: what leaves the node
    result: ExtractResult
    report: RiskReport
    policy: str
    project: str
    purpose: str = ""
    extract_id: str = ""  # the node register's request id of this extract


def make_extract(
    cohort: pa.Table,
    spec: ExtractSpec,
    policy: Policy,
    pseudonymizer: Pseudonymizer,
    project: str = "",
    purpose: str = "",
    extract_id: str = "",
) -> Extract:
    if not policy.allows_output("extract"):
        raise ExtractRefused(f"extract refused: policy {policy.label} does not release extracts")
    if spec.id_column not in cohort.column_names:
        raise UserError(f"extract: the cohort has no {spec.id_column!r} column")
    result = k_anonymize(cohort, spec, policy)
    table = pseudonymizer.apply(
        result.table, id_column=spec.id_column, keep_free_text=policy.extract.keep_free_text
    )
    return Extract(table, result, risk_report(result), policy.label, project, purpose, extract_id)


def write_extract(extract: Extract, out: Path) -> list[Path]:
    """extract.parquet, extract.csv, risk-report.json/.html and manifest.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    parquet, csv = out / "extract.parquet", out / "extract.csv"
    pq.write_table(extract.table, parquet)
    pacsv.write_csv(extract.table, csv)
    js, page = extract.report.write(out)
    manifest = out / "manifest.json"
    manifest.write_bytes(
        orjson.dumps(
            {
                "project": extract.project,
                "purpose": extract.purpose,
                "extract_id": extract.extract_id,
                "policy": extract.policy,
                "records": extract.table.num_rows,
                "columns": extract.table.column_names,
                "k": extract.result.k,
                "l": extract.result.l,
                "generalisation": extract.result.node,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    return [parquet, csv, js, page, manifest]


def _person_attributes(store: Any) -> pa.Table:
    have = store.existing_tables()
    person = store.qualified("person")
    if "location" in have:
        sql = (
            "SELECT p.person_id, p.year_of_birth, p.gender_concept_id, p.race_concept_id, "
            f"p.ethnicity_concept_id, l.zip FROM {person} p "
            f"LEFT JOIN {store.qualified('location')} l ON l.location_id = p.location_id"
        )
    else:
        sql = (
            "SELECT person_id, year_of_birth, gender_concept_id, race_concept_id, "
            f"ethnicity_concept_id, NULL AS zip FROM {person}"
        )
    raw = store.query_arrow(sql)
    cols = [raw.column(i).cast(t) for i, t in enumerate(PERSON_TYPES)]
    gender = cols[2]
    labels = pc.cast(gender, pa.string())
    for concept, label in SEX_LABELS.items():
        labels = pc.if_else(pc.equal(gender, concept), label, labels)
    return pa.table(
        {
            "person_id": cols[0],
            "year_of_birth": cols[1],
            "sex": labels,
            "race_concept_id": cols[3],
            "ethnicity_concept_id": cols[4],
            "postal_code": cols[5],
        }
    )


def cohort_rows(store: Any, study: Any) -> pa.Table:
    """One row per cohort entry of `study` (a parsed Study), with person attributes."""
    from passerelle.query.engines import engine_for

    members = engine_for(store).cohort_members(study)
    joined = members.join(_person_attributes(store), "person_id", join_type="left outer")
    years = pc.year(joined.column("index_date")).cast(pa.int64())
    age = pc.subtract(years, joined.column("year_of_birth"))
    return joined.append_column("age", age).sort_by("person_id")
