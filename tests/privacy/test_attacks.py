"""The attack suite (docs/privacy.md): each attack must keep failing against the policy.

Every study runs through the real study language on every engine (the reference engine,
DuckDB, PostgreSQL, Spark) over Eunomia GiBleed, and `protect()` is applied as the node does.
The attacker sees only released results; the raw result of the same engine is the truth the
attacker tries to recover. Each test asserts that the recovered value is not the true one, or
that the query was refused.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.privacy import rules
from passerelle.privacy.disclosure import protect
from passerelle.privacy.extract import ExtractSpec
from passerelle.privacy.ledger import BudgetExhausted, BudgetLedger, create_ledger_tables
from passerelle.privacy.pipeline import cohort_rows, make_extract
from passerelle.privacy.policy import parse_policy
from passerelle.privacy.pseudonym import Pseudonymizer
from passerelle.query.parse import parse_study
from passerelle.query.reference import ReferenceEngine
from passerelle.query.result import StudyResult

pytestmark = pytest.mark.shared_data

POLICY = parse_policy({"policy": "minimal", "min_cell": 11, "rounding": 5})
GI_BLEED = {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "first"}


def root_conftest() -> Any:
    import sys

    here = Path(__file__).resolve().parent.parent / "conftest.py"
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == here:
            return mod
    raise RuntimeError("tests/conftest.py is not loaded")


class Node:
    """One engine over GiBleed: runs a spec and returns (truth, released)."""

    def __init__(self, name: str, store: Any):
        self.name = name
        self.store = store

    def raw(self, spec: dict[str, Any]) -> StudyResult:
        study = parse_study(spec)
        if self.name == "reference":
            from passerelle.query.reference import ReferenceEngine

            return ReferenceEngine.from_store(self.store, study).execute(study)
        from passerelle.query.engines import engine_for

        return engine_for(self.store).execute(study)

    def run(self, spec: dict[str, Any]) -> tuple[StudyResult, StudyResult]:
        truth = self.raw(spec)
        return truth, protect(truth, POLICY)

    def scalar(self, sql: str) -> Any:
        rows = self.store.query(sql).rows
        return rows[0][0] if rows else None


_DUCKDB: dict[str, Any] = {}


def _duckdb_gibleed(gibleed_dir: Path, root: Path) -> Any:
    if "store" not in _DUCKDB:
        store = open_store(f"duckdb:///{root / 'gibleed.duckdb'}")
        store.init()
        load_folder(store, gibleed_dir)
        _DUCKDB["store"] = store
    return _DUCKDB["store"]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("reference"),
        pytest.param("duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
    ],
)
def node(request, gibleed_dir, tmp_path_factory) -> Iterator[Node]:
    name = request.param
    if name in ("reference", "duckdb"):
        yield Node(name, _duckdb_gibleed(gibleed_dir, tmp_path_factory.mktemp("duck")))
        return
    conf = root_conftest()
    if name == "postgres":
        base = conf.postgres_admin_url()
        schema = f"p_{uuid.uuid4().hex[:12]}"
        sep = "&" if "?" in base else "?"
        store = open_store(f"{base}{sep}schema={schema}")
        try:
            store.init()
            load_folder(store, gibleed_dir)
            yield Node(name, store)
        finally:
            store.close()
            import psycopg

            from passerelle.cdm.url import parse_store_url

            with psycopg.connect(parse_store_url(base).postgres_conninfo(), autocommit=True) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return
    conf.spark_available()
    store = open_store(f"spark:///{tmp_path_factory.mktemp('spark') / 'warehouse'}")
    try:
        store.init()
        load_folder(store, gibleed_dir)
        yield Node(name, store)
    finally:
        store.close()


def study(name: str, entry: dict[str, Any], analyses: list[dict[str, Any]], **cohort: Any):
    return {"study": name, "cohort": {"entry": entry, **cohort}, "analyses": analyses}


def value(result: StudyResult, table: str, column: str, **dims: Any) -> Any:
    t = result.table(table)
    for row in t.rows:
        if all(row[t.column_names.index(k)] == v for k, v in dims.items()):
            return row[t.column_names.index(column)]
    return 0  # an absent group is an empty one


def difference(a: Any, b: Any) -> Any:
    """What an attacker subtracting two released counts gets (None if either is withheld)."""
    return None if a is None or b is None else a - b


def cohort_persons_sql(store: Any) -> str:
    co, ca = store.qualified("condition_occurrence"), store.qualified("concept_ancestor")
    return (
        f"SELECT co.person_id FROM {co} co JOIN {ca} ca "
        "ON ca.descendant_concept_id = co.condition_concept_id "
        "WHERE ca.ancestor_concept_id = 192671"
    )


DOMAINS = (
    ("condition", "condition_occurrence", "condition_concept_id"),
    ("drug", "drug_exposure", "drug_concept_id"),
    ("procedure", "procedure_occurrence", "procedure_concept_id"),
)


def rare_event(node: Node, holders: int, inside: bool = True) -> tuple[str, int]:
    """(domain, concept) of an event held by exactly `holders` persons inside (or outside) the
    GI bleed cohort, and not itself a GI bleed."""
    ca = node.store.qualified("concept_ancestor")
    for domain, table, column in DOMAINS:
        t = node.store.qualified(table)
        sql = (
            f"SELECT {column} FROM {t} WHERE person_id {'' if inside else 'NOT '}IN "
            f"({cohort_persons_sql(node.store)}) AND {column} NOT IN "
            f"(SELECT descendant_concept_id FROM {ca} WHERE ancestor_concept_id = 192671) "
            f"GROUP BY {column} HAVING COUNT(DISTINCT person_id) = {holders} ORDER BY {column}"
        )
        found = node.scalar(sql)
        if found is not None:
            return domain, int(found)
    pytest.skip(f"GiBleed has no event held by exactly {holders} persons")
    raise AssertionError


# -- 1. differencing ------------------------------------------------------------------------
def test_differencing_one_person(node):
    """count(A) - count(A and not x), x held by one person: the person is not exposed."""
    domain, x = rare_event(node, 1)
    analyses = [
        {"name": "size", "count": "persons"},
        {"name": "sex", "count": "persons", "by": ["sex"]},
    ]
    truth_a, a = node.run(study("a", GI_BLEED, analyses))
    exclude = {"exclude": {domain: {"concepts": [x]}, "window": {"start": None, "end": None}}}
    truth_b, b = node.run(study("b", GI_BLEED, analyses, criteria=[exclude]))
    true_diff = value(truth_a, "size", "persons") - value(truth_b, "size", "persons")
    assert true_diff == 1
    assert difference(value(a, "size", "persons"), value(b, "size", "persons")) != true_diff
    # the sex of x: the sex whose released count changed
    for sex in (8507, 8532):
        true = value(truth_a, "sex", "persons", sex=sex) - value(truth_b, "sex", "persons", sex=sex)
        got = difference(value(a, "sex", "persons", sex=sex), value(b, "sex", "persons", sex=sex))
        assert got is None or got % POLICY.rounding == 0
        if true:
            assert got != true


# -- 2. tracker and overlapping windows -----------------------------------------------------
def test_tracker_padding_a_small_set(node):
    """count(A or S) - count(A), S = 3 persons outside A hidden inside a large cohort."""
    domain, s = rare_event(node, 3, inside=False)
    padded = {
        "any_of": [{"condition": GI_BLEED["condition"]}, {domain: {"concepts": [s]}}],
        "occurrence": "first",
    }
    analyses = [{"name": "size", "count": "persons"}]
    truth_a, a = node.run(study("a", GI_BLEED, analyses))
    truth_t, t = node.run(study("tracker", padded, analyses))
    true = value(truth_t, "size", "persons") - value(truth_a, "size", "persons")
    assert true == 3
    assert difference(value(t, "size", "persons"), value(a, "size", "persons")) != true


def _onset_days(node: Node) -> list[tuple[Any, int]]:
    co, ca = node.store.qualified("condition_occurrence"), node.store.qualified("concept_ancestor")
    sql = (
        f"SELECT d, COUNT(*) FROM (SELECT co.person_id, MIN(co.condition_start_date) AS d "
        f"FROM {co} co JOIN {ca} ca ON ca.descendant_concept_id = co.condition_concept_id "
        "WHERE ca.ancestor_concept_id = 192671 GROUP BY co.person_id) f GROUP BY d ORDER BY d"
    )
    return [(d, int(n)) for d, n in node.store.query(sql).rows]


def test_overlapping_windows(node):
    """count(index in [t0, t1]) vs count(index in [t0, t1 + one day]) adding one person."""
    days = _onset_days(node)
    ones = [i for i, (_, n) in enumerate(days) if n == 1 and i > len(days) // 2]
    i = ones[0]
    start, end, extra = days[0][0], days[i - 1][0], days[i][0]
    analyses = [{"name": "size", "count": "persons"}]

    def window(stop: Any) -> dict[str, Any]:
        return {**GI_BLEED, "dates": {"start": str(start), "end": str(stop)}}

    truth_1, r1 = node.run(study("w1", window(end), analyses))
    truth_2, r2 = node.run(study("w2", window(extra), analyses))
    true = value(truth_2, "size", "persons") - value(truth_1, "size", "persons")
    assert true == 1
    assert difference(value(r2, "size", "persons"), value(r1, "size", "persons")) != true


def test_narrow_windows_isolating_one_patient(node):
    """A one-day window, an exact age: released as "<11" (or withheld), never as the count."""
    day = next(d for d, n in _onset_days(node) if n == 1)
    entry = {**GI_BLEED, "dates": {"start": str(day), "end": str(day)}}
    analyses = [
        {"name": "size", "count": "persons"},
        {"name": "sex", "count": "persons", "by": ["sex"]},
    ]
    truth, released = node.run(study("narrow", entry, analyses))
    assert value(truth, "size", "persons") == 1
    assert value(released, "size", "persons") is None
    t = released.table("size")
    assert rules.SUPPRESSED in t.flags[(0, "persons")] and "below:11" in t.flags[(0, "persons")]
    sex_table = released.table("sex")
    assert all(r[1] is None for r in sex_table.rows)  # the sex of that patient is not released
    truth, released = node.run(
        study("one-age", GI_BLEED, analyses, demographics={"age": {"min": 47, "max": 47}})
    )
    n = value(truth, "size", "persons")
    if 0 < n < POLICY.min_cell:
        assert value(released, "size", "persons") is None


# -- 3. breakdowns with totals and with other breakdowns -------------------------------------
def _derive(released: StudyResult, truth: StudyResult) -> list[tuple[Any, Any]]:
    """Every cell an attacker can solve from margins: (recovered, true) pairs.

    For each pair of tables (fine, margin) where the margin's dimensions are a subset of the
    fine table's and both have the count column, a margin cell minus the released cells of
    its line gives the single withheld cell of that line, if there is exactly one.
    """
    found = []
    tables = released.tables
    for fine in tables:
        fdims = [c.name for c in fine.columns if c.kind == "dimension"]
        for margin in tables:
            mdims = [c.name for c in margin.columns if c.kind == "dimension"]
            if margin is fine or not set(mdims) < set(fdims):
                continue
            for col in [c.name for c in fine.columns if c.kind == "count"]:
                if col not in margin.column_names:
                    continue
                lines = defaultdict(list)
                for ri, row in enumerate(fine.rows):
                    key = tuple(row[fine.column_names.index(d)] for d in mdims)
                    lines[key].append(ri)
                for mrow in margin.rows:
                    key = tuple(mrow[margin.column_names.index(d)] for d in mdims)
                    total = mrow[margin.column_names.index(col)]
                    cells = lines.get(key, [])
                    hidden = [
                        ri for ri in cells if fine.rows[ri][fine.column_names.index(col)] is None
                    ]
                    if total is None or len(hidden) != 1:
                        continue
                    known = sum(
                        fine.rows[ri][fine.column_names.index(col)]
                        for ri in cells
                        if ri not in hidden
                    )
                    true_fine = truth.table(fine.name)
                    found.append(
                        (total - known, true_fine.rows[hidden[0]][fine.column_names.index(col)])
                    )
    return found


def test_breakdown_plus_total(node):
    analyses = [
        {"name": "size", "count": "persons"},
        {"name": "by_year", "count": "persons", "by": ["index_year"]},
        {"name": "by_age", "count": "persons", "by": [{"age_band": 5}]},
    ]
    truth, released = node.run(study("bt", GI_BLEED, analyses))
    hidden = [r for r in released.table("by_year").rows if r[1] is None]
    assert hidden, "the breakdown by year must have small cells for this attack to mean anything"
    for recovered, true in _derive(released, truth):
        assert recovered != true


def test_breakdown_plus_breakdown(node):
    analyses = [
        {"name": "by_sex", "count": "persons", "by": ["sex"]},
        {"name": "by_age", "count": "persons", "by": [{"age_band": 5}]},
        {"name": "by_sex_age", "count": "persons", "by": ["sex", {"age_band": 5}]},
        {
            "name": "outcome",
            "outcome": {
                "condition": {"concepts": [80809], "descendants": True},
                "window": {"start": 1, "end": 365},
            },
            "by": ["sex"],
        },
    ]
    truth, released = node.run(study("bb", GI_BLEED, analyses))
    for recovered, true in _derive(released, truth):
        assert recovered != true
    # within the 2-D table: no row or column with exactly one withheld cell next to released ones
    t = released.table("by_sex_age")
    for d in ("sex", "age_band"):
        other = "age_band" if d == "sex" else "sex"
        groups = defaultdict(list)
        for r in t.rows:
            groups[r[t.column_names.index(other)]].append(r[t.column_names.index("persons")])
        for cells in groups.values():
            assert sum(c is None for c in cells) != 1 or len(cells) == 1


# -- 4. averaging repeated noisy feasibility queries ----------------------------------------
def test_averaging_repeated_noisy_queries(node, tmp_path):
    ledger_db = create_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_ledger_tables(ledger_db)
    pol = parse_policy(
        {"policy": "dp", "dp": {"feasibility_epsilon": 0.1, "applicant_budget": 1.0}}
    )
    ledger = BudgetLedger(ledger_db, pol)
    spec = study("feasibility", GI_BLEED, [{"name": "size", "count": "persons"}])
    true = value(node.raw(spec), "size", "persons")

    def count() -> int:  # the node's true count (computed once: the ledger asks per release)
        return true

    answers = [ledger.feasibility_count("mallory", spec, count).value for _ in range(50)]
    assert len(set(answers)) == 1  # the same noisy answer: nothing to average
    assert sum(answers) / len(answers) != true
    # re-phrasings are new queries: they spend the budget until refused
    with pytest.raises(BudgetExhausted):
        for i in range(100):
            variant = {**spec, "study": f"feasibility-{i}"}
            ledger.feasibility_count("mallory", variant, count)


# -- 5. re-identification from an extract's quasi-identifiers --------------------------------
def test_reidentification_from_quasi_identifiers(node):
    st = parse_study(study("extract", GI_BLEED, [{"name": "size", "count": "persons"}]))
    cohort = cohort_rows(node.store, st)  # members computed in SQL on this node's store
    oracle = ReferenceEngine.from_store(node.store, st).cohort(st.cohort)
    members = zip(*(cohort.column(c).to_pylist() for c in ("person_id", "index_date")), strict=True)
    assert sorted(members) == sorted((int(e.person), e.index) for e in oracle)
    qis = ["age", "sex", "index_date", "race_concept_id"]
    spec = ExtractSpec.parse(
        {
            "quasi_identifiers": [
                {"column": "age", "hierarchy": "age"},
                "sex",
                {"column": "index_date", "hierarchy": "date"},
                "race_concept_id",
            ]
        }
    )
    ex = make_extract(cohort, spec, POLICY, Pseudonymizer(b"m" * 32), "p")
    released = ex.table
    assert "person_id" not in released.column_names
    # the attacker knows every target's exact quasi-identifiers and the hierarchies
    keys = list(zip(*[released.column(c).to_pylist() for c in qis], strict=True))
    sizes = defaultdict(int)
    for k in keys:
        sizes[k] += 1
    assert min(sizes.values()) >= POLICY.extract.k  # at best 1 chance in k of the right record
    assert ex.report.data["prosecutor_risk"]["highest"] <= 1 / POLICY.extract.k
    exact = set(zip(*[cohort.column(c).to_pylist() for c in qis], strict=True))
    generalised = set(keys)
    assert not exact & generalised or all(sizes[k] >= POLICY.extract.k for k in exact & generalised)


def test_differencing_in_dp_mode(node, tmp_path):
    """The same differencing in DP mode: noisy, cached per study, paid from the project budget."""
    ledger_db = create_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    create_ledger_tables(ledger_db)
    pol = parse_policy(
        {"policy": "dp", "dp": {"mode": "required", "study_epsilon": 1.0, "project_budget": 2.0}}
    )
    ledger = BudgetLedger(ledger_db, pol)
    domain, x = rare_event(node, 1)
    analyses = [{"name": "size", "count": "persons"}]
    spec_a = study("a", GI_BLEED, analyses)
    exclude = {"exclude": {domain: {"concepts": [x]}, "window": {"start": None, "end": None}}}
    spec_b = study("b", GI_BLEED, analyses, criteria=[exclude])
    raw_a, raw_b = node.raw(spec_a), node.raw(spec_b)
    a = ledger.project_study("p", spec_a, raw_a)
    assert ledger.project_study("p", spec_a, raw_a).table("size").rows == a.table("size").rows
    b = ledger.project_study("p", spec_b, raw_b)
    assert "noisy" in a.table("size").flags[(0, "persons")]
    got = difference(value(a, "size", "persons"), value(b, "size", "persons"))
    assert got != value(raw_a, "size", "persons") - value(raw_b, "size", "persons")
    with pytest.raises(BudgetExhausted):
        ledger.project_study("p", {**spec_b, "study": "b-again"}, raw_b)
