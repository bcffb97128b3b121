"""Disclosure policy: YAML -> frozen, validated Policy with documented defaults."""

from __future__ import annotations

import pytest

from passerelle.errors import ConfigError
from passerelle.privacy import policy as P


def write(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_minimal_policy_exactly_as_written(tmp_path):
    pol = P.load_policy(write(tmp_path, "policy: minimal\nmin_cell: 11\nrounding: 5\n"))
    assert pol.name == "minimal"
    assert pol.min_cell == 11 and pol.rounding == 5
    assert pol.complementary_suppression is True
    assert pol.distribution.allow_min_max is False
    assert pol.dp.feasibility_epsilon == P.DEFAULT_FEASIBILITY_EPSILON
    assert pol.extract.k == 11
    assert pol.suppressed_display == "<11"
    assert pol.label.startswith("minimal@") and len(pol.version) == 12


def test_version_is_hash_of_normalised_content(tmp_path):
    a = P.load_policy(write(tmp_path, "policy: minimal\nmin_cell: 11\nrounding: 5\n"))
    b = P.parse_policy({"policy": "minimal"})  # the same meaning: same version
    c = P.parse_policy({"policy": "minimal", "rounding": 10})
    assert a.version == b.version
    assert a.version != c.version


def test_policy_is_frozen():
    pol = P.default_policy()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        pol.min_cell = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("min_cell: 11\n", "policy"),
        ("policy: x\nmin_cell: 0\n", "min_cell"),
        ("policy: x\nrounding: -5\n", "rounding"),
        ("policy: x\nmin_cel: 11\n", "min_cel"),
        ("policy: x\ndp: {feasibility_epsilon: 2, applicant_budget: 1}\n", "dp"),
        ("policy: x\noutput_types: [everything]\n", "output"),
        ("policy: x\ndistribution: {allow_min_max: maybe}\n", "distribution.allow_min_max"),
    ],
)
def test_invalid_policies_name_the_field(tmp_path, text, path):
    with pytest.raises(ConfigError) as err:
        P.load_policy(write(tmp_path, text))
    assert path in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        P.load_policy(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        P.load_policy(write(tmp_path, "policy: [unclosed\n"))


def test_full_policy_round_trip(tmp_path):
    text = """
policy: strict-node
min_cell: 8
rounding: 10
complementary_suppression: true
statistic_digits: 2
distribution: {min_n: 20, allow_min_max: true, percentile_min_each_side: 15}
dominance: {n: 1, k: 0.6}
purposes: [research]
output_types: [aggregate]
dp: {mechanism: gaussian, feasibility_epsilon: 0.2, applicant_budget: 2, period: week,
     mode: required, project_budget: 5, study_epsilon: 1}
extract: {k: 20, l: 3, max_suppression: 0.01, date_shift_days: 30}
"""
    pol = P.load_policy(write(tmp_path, text))
    assert pol.allows_purpose("research") and not pol.allows_purpose("marketing")
    assert pol.allows_output("aggregate") and not pol.allows_output("extract")
    assert pol.dp.mechanism is P.Mechanism.gaussian and pol.dp.period is P.BudgetPeriod.week
    assert P.parse_policy(pol.normalised()) == pol


def test_purposes_and_output_types_are_enforced():
    pol = P.parse_policy({"policy": "x", "purposes": ["research"], "output_types": ["aggregate"]})
    P.require_allowed(pol, "research", "aggregate")
    with pytest.raises(P.PolicyRefusal, match="does not release 'extract'"):
        P.require_allowed(pol, "research", "extract")
    with pytest.raises(P.PolicyRefusal, match="purpose 'marketing'"):
        P.require_allowed(pol, "marketing", "aggregate")
