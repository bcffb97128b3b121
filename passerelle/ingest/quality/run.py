"""Running the checks over a store: a handful of SQL statements per table, each written in the
SQL that DuckDB, PostgreSQL and Spark all accept (LEFT JOINs, CASE, EXTRACT, CURRENT_DATE)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot

from passerelle.cdm.schema import TABLES, TABLES_BY_NAME
from passerelle.ingest.quality import rules as R
from passerelle.ingest.quality.model import Category, CheckResult, judge

C = Category
# sqlglot dialect of each store engine, to quote identifiers such as note_nlp.offset.
DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "spark": "spark"}


@dataclass
class QualityReport:
    store: str
    engine: str
    checks: list[CheckResult] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    completeness: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    per_year: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    vocabulary_loaded: bool = False

    def summary(self) -> dict[str, Any]:
        by: dict[str, dict[str, int]] = {}
        for c in self.checks:
            s = by.setdefault(c.category.value, {"pass": 0, "fail": 0, "not applicable": 0})
            s[c.status.value] += 1
        applicable = [c for c in self.checks if c.status.value != "not applicable"]
        return {
            "checks": len(applicable),
            "passed": sum(1 for c in applicable if c.status.value == "pass"),
            "failed": sum(1 for c in applicable if c.status.value == "fail"),
            "by_category": by,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "engine": self.engine,
            "summary": self.summary(),
            "rows": self.rows,
            "vocabulary_loaded": self.vocabulary_loaded,
            "checks": [c.to_dict() for c in self.checks],
            "completeness": self.completeness,
            "mapping_coverage": self.coverage,
            "records_per_year": {t: [list(p) for p in v] for t, v in self.per_year.items()},
        }

    def failed(self, check: str, table: str, field_name: str | None = None) -> CheckResult:
        for c in self.checks:
            if (
                c.check == check
                and c.table == table
                and (field_name is None or c.field == field_name)
            ):
                return c
        raise KeyError((check, table, field_name))


class Runner:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.q = store.qualified
        self.report = QualityReport(store=store.url.redacted(), engine=store.engine)
        self.dialect = DIALECTS[store.engine]

    def ident(self, name: str) -> str:
        return sqlglot.exp.to_identifier(name, quoted=True).sql(dialect=self.dialect)

    def one(self, sql: str) -> tuple:
        rows = self.store.query(sql).rows
        return tuple(int(v or 0) if isinstance(v, int | float) or v is None else v for v in rows[0])

    def add(self, check, category, table, fld, desc, threshold, failing, denom, detail="") -> None:
        self.report.checks.append(
            CheckResult(
                check,
                category,
                table,
                fld,
                desc,
                threshold,
                int(failing),
                int(denom),
                judge(int(failing), int(denom), threshold),
                detail,
            )
        )

    # -- driving ---------------------------------------------------------------------------
    def run(self) -> QualityReport:
        have = self.store.existing_tables()
        self.concepts = (
            "concept" in have and self.one(f"SELECT count(*) FROM {self.q('concept')}")[0] > 0
        )
        self.report.vocabulary_loaded = bool(self.concepts)
        self.has_person = "person" in have
        self.has_period = "observation_period" in have
        for table in TABLES:
            if table.vocabulary or table.name not in have:
                continue
            n = self.table_checks(table)
            self.report.rows[table.name] = n
        if self.has_person and self.report.rows.get("person"):
            self.person_checks()
        for ev in R.EVENTS:
            if self.report.rows.get(ev.table):
                self.event_checks(ev)
        for span_table, start, end in R.SPANS:
            if self.report.rows.get(span_table):
                self.span_check(span_table, start, end)
        if self.report.rows.get("measurement"):
            self.unit_checks()
        return self.report

    # -- per table: completeness, required fields, keys, foreign keys -----------------------
    def table_checks(self, table) -> int:
        t = self.q(table.name)
        cols = table.columns
        pk = table.primary_key[0] if len(table.primary_key) == 1 else None
        exprs = ["count(*)"] + [f"count({self.ident(c.name)})" for c in cols]
        if pk:
            exprs.append(f"count(DISTINCT {pk})")
        values = self.one(f"SELECT {', '.join(exprs)} FROM {t}")
        n = values[0]
        filled = dict(zip([c.name for c in cols], values[1 : 1 + len(cols)], strict=True))
        for c in cols:
            nulls = n - filled[c.name]
            self.report.completeness.append(
                {
                    "table": table.name,
                    "field": c.name,
                    "rows": n,
                    "null": nulls,
                    "null_pct": round(100.0 * nulls / n, 3) if n else None,
                }
            )
            if c.required:
                self.add(
                    "isRequired",
                    C.conformance,
                    table.name,
                    c.name,
                    "a required field is NULL",
                    R.THRESHOLD_STRUCTURAL,
                    nulls,
                    n,
                )
            else:
                self.add(
                    "measureValueCompleteness",
                    C.completeness,
                    table.name,
                    c.name,
                    "share of rows where the field is NULL (informative)",
                    100.0,
                    nulls,
                    n,
                )
        if pk:
            distinct = values[-1]
            self.add(
                "isPrimaryKey",
                C.conformance,
                table.name,
                pk,
                "rows whose primary key value another row also has",
                R.THRESHOLD_STRUCTURAL,
                n - distinct,
                n,
                detail=f"{n} rows, {distinct} distinct ids",
            )
        if n and self.has_person and "person_id" in table.column_names and table.name != "person":
            failing = self.one(
                f"SELECT count(*) FROM {t} x LEFT JOIN {self.q('person')} p "
                f"ON p.person_id = x.person_id WHERE p.person_id IS NULL AND x.person_id IS NOT NULL"
            )[0]
            self.add(
                "fkPerson",
                C.conformance,
                table.name,
                "person_id",
                "person_id names no PERSON row",
                R.THRESHOLD_STRUCTURAL,
                failing,
                n,
            )
        concept_cols = [c.name for c in cols if c.references == "concept.concept_id"]
        if n and concept_cols and self.concepts:
            joins, sums = [], []
            for i, col in enumerate(concept_cols):
                joins.append(f"LEFT JOIN {self.q('concept')} k{i} ON k{i}.concept_id = x.{col}")
                sums.append(
                    f"sum(CASE WHEN x.{col} IS NOT NULL AND x.{col} <> 0 "
                    f"AND k{i}.concept_id IS NULL THEN 1 ELSE 0 END)"
                )
            failing = self.one(f"SELECT {', '.join(sums)} FROM {t} x {' '.join(joins)}")
            for col, f in zip(concept_cols, failing, strict=True):
                self.add(
                    "fkConcept",
                    C.conformance,
                    table.name,
                    col,
                    "concept id not in CONCEPT",
                    R.THRESHOLD_STRUCTURAL,
                    f,
                    n,
                )
        return n

    # -- person ------------------------------------------------------------------------------
    def person_checks(self) -> None:
        p, d = self.q("person"), self.q("death")
        n = self.report.rows["person"]
        now = "EXTRACT(YEAR FROM CURRENT_DATE)"
        if self.report.rows.get("death"):
            last = f"COALESCE(EXTRACT(YEAR FROM d.death_date), {now})"
            join = f"LEFT JOIN {d} d ON d.person_id = p.person_id"
        else:
            last, join = now, ""
        failing = self.one(
            f"SELECT count(*) FROM {p} p {join} WHERE p.year_of_birth > {last} "
            f"OR {last} - p.year_of_birth > {R.MAX_AGE}"
        )[0]
        self.add(
            "plausibleAge",
            C.plausibility,
            "person",
            "year_of_birth",
            f"age (at death, else today) outside 0-{R.MAX_AGE} years",
            R.THRESHOLD_STRUCTURAL,
            failing,
            n,
        )
        if self.has_period:
            failing = self.one(
                f"SELECT count(*) FROM {p} p LEFT JOIN "
                f"(SELECT DISTINCT person_id FROM {self.q('observation_period')}) o "
                f"ON o.person_id = p.person_id WHERE o.person_id IS NULL"
            )[0]
            self.add(
                "personWithoutObservationPeriod",
                C.completeness,
                "person",
                "person_id",
                "persons with no observation period",
                R.THRESHOLD_STRUCTURAL,
                failing,
                n,
            )

    # -- events ------------------------------------------------------------------------------
    def event_checks(self, ev: R.Event) -> None:
        t, n = self.q(ev.table), self.report.rows[ev.table]
        if self.has_person:
            failing = self.one(
                f"SELECT count(*) FROM {t} x JOIN {self.q('person')} p ON p.person_id = x.person_id "
                f"WHERE EXTRACT(YEAR FROM x.{ev.start}) < p.year_of_birth"
            )[0]
            self.add(
                "plausibleAfterBirth",
                C.plausibility,
                ev.table,
                ev.start,
                "event in a year before the person's year of birth",
                R.THRESHOLD_STRUCTURAL,
                failing,
                n,
            )
        if ev.table != "death" and self.report.rows.get("death"):
            failing = self.one(
                f"SELECT count(*) FROM {t} x JOIN {self.q('death')} d ON d.person_id = x.person_id "
                f"WHERE x.{ev.start} > d.death_date + {R.DAYS_AFTER_DEATH}"
            )[0]
            self.add(
                "plausibleBeforeDeath",
                C.plausibility,
                ev.table,
                ev.start,
                f"event more than {R.DAYS_AFTER_DEATH} days after death",
                R.THRESHOLD_STRUCTURAL,
                failing,
                n,
            )
        if ev.in_observation and self.has_period:
            op = self.q("observation_period")
            failing = self.one(
                f"SELECT count(*) FROM {t} x LEFT JOIN (SELECT DISTINCT x2.{self._key(ev)} AS k "
                f"FROM {t} x2 JOIN {op} o ON o.person_id = x2.person_id "
                f"AND x2.{ev.start} >= o.observation_period_start_date "
                f"AND x2.{ev.start} <= o.observation_period_end_date) inside "
                f"ON inside.k = x.{self._key(ev)} WHERE inside.k IS NULL"
            )[0]
            self.add(
                "withinObservationPeriod",
                C.plausibility,
                ev.table,
                ev.start,
                "event starting outside every observation period of its person",
                R.THRESHOLD_STRUCTURAL,
                failing,
                n,
            )
        if ev.concept:
            failing = self.one(f"SELECT count(*) FROM {t} WHERE {ev.concept} = 0")[0]
            self.add(
                "standardConceptRecordCompleteness",
                C.completeness,
                ev.table,
                ev.concept,
                "records not mapped to a standard concept (concept_id 0)",
                R.THRESHOLD_UNMAPPED,
                failing,
                n,
            )
            self.coverage(ev)
        year = f"EXTRACT(YEAR FROM {ev.start})"
        rows = self.store.query(
            f"SELECT {year} AS y, count(*) FROM {t} WHERE {ev.start} IS NOT NULL "
            f"GROUP BY {year} ORDER BY 1"
        ).rows
        self.report.per_year[ev.table] = [(int(y), int(c)) for y, c in rows if y is not None]

    def _key(self, ev: R.Event) -> str:
        spec = TABLES_BY_NAME[ev.table]
        return spec.primary_key[0] if spec.primary_key else "person_id"

    def coverage(self, ev: R.Event) -> None:
        t = self.q(ev.table)
        mapped = f"CASE WHEN x.{ev.concept} <> 0 THEN 1 ELSE 0 END"
        sv = f"x.{ev.source_value}" if ev.source_value else "NULL"
        if self.concepts and ev.source_concept:
            vocab = "COALESCE(c.vocabulary_id, 'unknown')"
            join = f"LEFT JOIN {self.q('concept')} c ON c.concept_id = x.{ev.source_concept}"
        else:
            vocab, join = None, ""
        # PostgreSQL refuses GROUP BY a constant: without a vocabulary there is one group.
        group = f" GROUP BY {vocab} ORDER BY 1" if vocab else ""
        rows = self.store.query(
            f"SELECT {vocab or repr('unknown')} AS v, count(*), sum({mapped}), "
            f"count(DISTINCT {sv}), count(DISTINCT CASE WHEN x.{ev.concept} <> 0 THEN {sv} END) "
            f"FROM {t} x {join}{group}"
        ).rows
        for v, n, nm, codes, codes_m in rows:
            n, nm, codes, codes_m = int(n), int(nm or 0), int(codes or 0), int(codes_m or 0)
            self.report.coverage.append(
                {
                    "table": ev.table,
                    "domain": ev.domain,
                    "source_vocabulary": v,
                    "records": n,
                    "records_mapped": nm,
                    "record_share": round(nm / n, 4) if n else None,
                    "codes": codes,
                    "codes_mapped": codes_m,
                    "code_share": round(codes_m / codes, 4) if codes else None,
                }
            )

    def span_check(self, table: str, start: str, end: str) -> None:
        n = self.report.rows[table]
        failing = self.one(f"SELECT count(*) FROM {self.q(table)} WHERE {end} < {start}")[0]
        self.add(
            "plausibleStartBeforeEnd",
            C.plausibility,
            table,
            end,
            "end date before start date",
            R.THRESHOLD_STRUCTURAL,
            failing,
            n,
        )

    def unit_checks(self) -> None:
        t = self.q("measurement")
        for code, concept, low, high, label in R.UNIT_RANGES:
            has_unit = f"(unit_source_value = '{code}' OR unit_concept_id = {concept})"
            denom, failing = self.one(
                f"SELECT count(*), sum(CASE WHEN value_as_number < {low} OR value_as_number > {high} "
                f"THEN 1 ELSE 0 END) FROM {t} WHERE {has_unit} AND value_as_number IS NOT NULL"
            )
            self.add(
                "plausibleUnitValue",
                C.plausibility,
                "measurement",
                f"value_as_number [{code}]",
                f"{label}: value outside {low}-{high} {code}",
                R.THRESHOLD_VALUE_RANGE,
                failing,
                denom,
            )


def run_checks(store: Any) -> QualityReport:
    return Runner(store).run()
