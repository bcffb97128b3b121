"""k-anonymous extracts: hierarchies, the lattice search, refusals, risk report, pipeline."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from passerelle.privacy.extract import ExtractRefused, ExtractSpec, k_anonymize
from passerelle.privacy.hierarchies import Kind, QuasiIdentifier, build_levels, departement
from passerelle.privacy.pipeline import make_extract, write_extract
from passerelle.privacy.policy import parse_policy
from passerelle.privacy.pseudonym import Pseudonymizer
from passerelle.privacy.risk import risk_report
from passerelle.privacy.synthetic import QUASI_IDENTIFIERS, synthetic_cohort

POLICY = parse_policy({"policy": "t"})


def classes(table: pa.Table, qis: list[str]) -> Counter:
    cols = [table.column(c).to_pylist() for c in qis]
    return Counter(zip(*cols, strict=True))


def check_k_l(table: pa.Table, qis: list[str], k: int, sensitive: str | None, ell: int) -> None:
    """An independent check of k-anonymity and distinct l-diversity (plain Python)."""
    sizes = classes(table, qis)
    assert min(sizes.values()) >= k
    if sensitive:
        seen = defaultdict(set)
        cols = [table.column(c).to_pylist() for c in qis]
        for key, s in zip(
            zip(*cols, strict=True), table.column(sensitive).to_pylist(), strict=True
        ):
            seen[key].add(s)
        assert min(len(v) for v in seen.values()) >= ell


def test_hierarchies():
    qi = QuasiIdentifier("age", Kind.age)
    levels = build_levels(qi, [3, 42, None], [1, 1, 1], 11)
    assert levels.labels[1] == ["0-4", "40-44", "(missing)"]
    assert levels.labels[2] == ["0-9", "40-49", "(missing)"]
    assert levels.labels[-1] == ["*"] * 3
    d = build_levels(QuasiIdentifier("d", Kind.date), [dt.date(2020, 5, 17)], [1], 11)
    assert [lv[0] for lv in d.labels] == ["2020-05-17", "2020-05", "2020-Q2", "2020", "*"]
    p = build_levels(
        QuasiIdentifier("p", Kind.postal_code), ["75013", "20167", "97411"], [1] * 3, 11
    )
    assert p.labels[1] == ["75", "2A", "974"] and p.labels[2] == ["11", "94", "04"]
    assert departement("20290") == "2B" and departement(1000) == "01"
    c = build_levels(QuasiIdentifier("c", Kind.category), ["x", "y"], [50, 3], 11)
    assert c.labels[1] == ["x", "other"]


def spec(sensitive=(), **kw):
    return ExtractSpec.parse(
        {"quasi_identifiers": QUASI_IDENTIFIERS, "sensitive": list(sensitive), **kw}
    )


@pytest.mark.parametrize("n", [2_000, 30_000])
def test_k_anonymity_and_l_diversity_hold(n):
    table = synthetic_cohort(n, seed=n)
    res = k_anonymize(table, spec(["diagnosis"], keep=["measured_on"]), POLICY)
    qis = [q["column"] for q in QUASI_IDENTIFIERS]
    check_k_l(res.table, qis, 11, "diagnosis", 2)
    assert res.records_in - res.table.num_rows == res.evaluation.suppressed
    assert res.evaluation.suppressed <= 0.05 * n
    assert 0 < res.loss < 1


def test_search_is_optimal_on_a_small_lattice():
    """Exhaustive check: no node with a lower loss meets the target."""
    import itertools

    from passerelle.privacy import extract as E

    table = synthetic_cohort(3_000, seed=3)
    qis = QUASI_IDENTIFIERS[:3]
    sp = ExtractSpec.parse({"quasi_identifiers": qis})
    res = k_anonymize(table, sp, POLICY)
    cols = [E._prepare(table, QuasiIdentifier.parse(q), 11) for q in qis]
    search = E._Search(cols, [], 11, 1, int(0.05 * 3_000))
    for node in itertools.product(*[range(c.height + 1) for c in cols]):
        if search.loss(node) < res.loss - 1e-12:
            assert search.evaluate(node).suppressed > search.max_suppressed


def test_refusals():
    table = synthetic_cohort(8, seed=1)
    with pytest.raises(ExtractRefused, match="fewer than k=11"):
        k_anonymize(table, spec(), POLICY)
    table = synthetic_cohort(500, seed=1)
    uniform = table.set_column(
        table.column_names.index("diagnosis"), "diagnosis", pa.array(["same"] * 500)
    )
    with pytest.raises(ExtractRefused, match="l=2"):
        k_anonymize(uniform, spec(["diagnosis"]), POLICY)
    with pytest.raises(ExtractRefused, match="below the policy"):
        k_anonymize(table, spec(k=5), POLICY)


def test_risk_report_measures():
    res = k_anonymize(synthetic_cohort(5_000, seed=5), spec(), POLICY)
    data = risk_report(res).data
    sizes = classes(res.table, [q["column"] for q in QUASI_IDENTIFIERS])
    assert data["prosecutor_risk"]["highest"] == pytest.approx(1 / min(sizes.values()))
    assert data["prosecutor_risk"]["highest"] <= 1 / 11
    assert data["prosecutor_risk"]["records_above_threshold"] == 0
    assert data["marketer_risk"] == pytest.approx(len(sizes) / res.table.num_rows)
    assert data["journalist_risk"]["bound_used"] is True
    assert data["equivalence_classes"]["count"] == len(sizes)
    assert (
        sum(b["records"] for b in data["equivalence_classes"]["distribution"]) == res.table.num_rows
    )


def test_pipeline_writes_pseudonymised_files(tmp_path):
    cohort = synthetic_cohort(3_000, seed=9)
    pseudo = Pseudonymizer(b"k" * 32, max_shift_days=30)
    ex = make_extract(
        cohort,
        spec(["diagnosis"], keep=["measured_on", "diagnosis_source_value"]),
        POLICY,
        pseudo,
        "p1",
    )
    paths = write_extract(ex, tmp_path)
    names = {p.name for p in paths}
    assert {"extract.parquet", "extract.csv", "risk-report.json", "risk-report.html"} <= names
    out = pq.read_table(tmp_path / "extract.parquet")
    assert "person_id" not in out.column_names and "pseudonym" in out.column_names
    assert "diagnosis_source_value" not in out.column_names  # free text dropped by default
    report = json.loads((tmp_path / "risk-report.json").read_text())
    assert report["k"] == 11
    assert "<h1>" in (tmp_path / "risk-report.html").read_text()


def test_extract_refused_by_policy():
    pol = parse_policy({"policy": "no-extracts", "output_types": ["aggregate"]})
    with pytest.raises(ExtractRefused, match="does not release extracts"):
        make_extract(synthetic_cohort(100), spec(), pol, Pseudonymizer(b"k" * 32))
