"""A node's disclosure policy: a YAML file -> a frozen, validated `Policy`.

Every default is a named constant below, with the practice it comes from. A policy file names
itself (`policy: NAME`) and may set any other key; everything it omits takes the default, so
the minimal policy of issue 5 works as written::

    policy: minimal
    min_cell: 11
    rounding: 5

A policy's version is the hash of its normalised content (every key, defaults filled in), so
two files that mean the same thing have the same version and any change gives a new one.
`Policy.label` ("minimal@3f2a9c01b4de") is what a protected StudyResult names.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from passerelle.errors import ConfigError, UserError

# --- Defaults and their sources -------------------------------------------------------------

#: Smallest count released as such. The French CASD and the ATIH release PMSI aggregates only
#: for cells of at least 11 (counts 1-10 shown as "<11"). Comparable thresholds: OpenSAFELY
#: redacts counts <= 7 (output checking guidance, 2023), i2b2/SHRINE reports "10 or fewer".
DEFAULT_MIN_CELL = 11
#: Released counts are rounded to the nearest multiple of this base. OpenSAFELY and the UK ONS
#: round to the nearest 5 ("midpoint 6 rounding" in OpenSAFELY, nearest 5 at ONS).
DEFAULT_ROUNDING = 5
#: Secondary suppression so no suppressed cell can be derived from margins or other analyses
#: (Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4.3).
DEFAULT_COMPLEMENTARY_SUPPRESSION = True
#: A distribution (mean, sd, percentiles) is released only over at least this many persons;
#: the same threshold as cells (CASD practice applies the cell rule to every statistic).
DEFAULT_DISTRIBUTION_MIN_N = DEFAULT_MIN_CELL
#: Exact minimum and maximum are single persons' values: not released unless a policy allows
#: it (OpenSAFELY output checking and the ONS SRSG both forbid them by default).
DEFAULT_ALLOW_MIN_MAX = False
#: A percentile is released only when at least this many persons lie on each side of it.
DEFAULT_PERCENTILE_MIN_EACH_SIDE = DEFAULT_MIN_CELL
#: Dominance (n, k) rule for sums and means: suppress when the n largest contributors make more
#: than k of the total. (2, 0.85) is the rule quoted in Hundepool et al. 2012, §4.2.2, and used
#: by Eurostat business statistics.
DEFAULT_DOMINANCE_N = 2
DEFAULT_DOMINANCE_K = 0.85
#: Significant digits kept in released statistics (means, proportions, rates), so a statistic
#: cannot give back the exact counts that rounding hid.
DEFAULT_STATISTIC_DIGITS = 3
#: Purposes a node accepts (the French health data hub's "intérêt public" categories).
DEFAULT_PURPOSES = ("research", "public_policy", "care_quality", "feasibility", "teaching")
#: Output types a node releases: noisy feasibility counts, disclosure-checked aggregates and,
#: after a committee's approval, pseudonymised k-anonymous extracts.
DEFAULT_OUTPUT_TYPES = ("feasibility", "aggregate", "extract")
#: Differential privacy. Epsilon spent by one feasibility count: 0.1 gives a discrete Laplace
#: scale of 10, close to SHRINE's obfuscation (Gaussian noise, sd 6.5, clamped at +/-10).
DEFAULT_FEASIBILITY_EPSILON = 0.1
#: Budget of one applicant per period (Dwork & Roth 2014 advise total epsilon <= 1).
DEFAULT_APPLICANT_BUDGET = 1.0
DEFAULT_BUDGET_PERIOD = "month"
#: Budget of one approved project across all its studies in DP mode.
DEFAULT_PROJECT_BUDGET = 3.0
#: Epsilon one study consumes in DP mode (split across its tables).
DEFAULT_STUDY_EPSILON = 0.5
#: delta used when a Gaussian (zCDP) release is converted to (epsilon, delta) for the ledger.
DEFAULT_DP_DELTA = 1e-7
#: A person may contribute to at most this many "entries" counted in DP mode (the sensitivity
#: of an entries count); person counts have sensitivity 1.
DEFAULT_MAX_ENTRIES_PER_PERSON = 10
#: Extracts: k-anonymity (same threshold as cells), l-diversity, share of records that local
#: suppression may remove (ARX's examples use 2-10 %), and the re-identification risk
#: threshold whose exceedance the risk report counts (1/k).
DEFAULT_K = DEFAULT_MIN_CELL
DEFAULT_L = 2
DEFAULT_MAX_SUPPRESSION = 0.05
#: Shift of dates in extracts: each person's dates move by the same number of days, drawn from
#: [-N, N] \\ {0} by the project key (HIPAA Expert Determination practice: up to a year).
DEFAULT_DATE_SHIFT_DAYS = 180


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Mechanism(StrEnum):
    laplace = "laplace"  # discrete Laplace (geometric): pure epsilon-DP
    gaussian = "gaussian"  # discrete Gaussian: rho-zCDP, charged as (epsilon, delta)


class DPMode(StrEnum):
    off = "off"  # approved studies never use DP
    allowed = "allowed"  # a project may ask for DP mode
    required = "required"  # every approved study runs in DP mode


class BudgetPeriod(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    year = "year"


class DistributionPolicy(_Frozen):
    min_n: int = Field(DEFAULT_DISTRIBUTION_MIN_N, ge=1)
    allow_min_max: bool = DEFAULT_ALLOW_MIN_MAX
    percentile_min_each_side: int = Field(DEFAULT_PERCENTILE_MIN_EACH_SIDE, ge=1)


class DominancePolicy(_Frozen):
    n: int = Field(DEFAULT_DOMINANCE_N, ge=1)
    k: float = Field(DEFAULT_DOMINANCE_K, gt=0, le=1)


class DPPolicy(_Frozen):
    mechanism: Mechanism = Mechanism.laplace
    feasibility_epsilon: float = Field(DEFAULT_FEASIBILITY_EPSILON, gt=0)
    applicant_budget: float = Field(DEFAULT_APPLICANT_BUDGET, gt=0)
    period: BudgetPeriod = BudgetPeriod(DEFAULT_BUDGET_PERIOD)
    mode: DPMode = DPMode.allowed
    project_budget: float = Field(DEFAULT_PROJECT_BUDGET, gt=0)
    study_epsilon: float = Field(DEFAULT_STUDY_EPSILON, gt=0)
    delta: float = Field(DEFAULT_DP_DELTA, gt=0, lt=1)
    max_entries_per_person: int = Field(DEFAULT_MAX_ENTRIES_PER_PERSON, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> DPPolicy:
        if self.feasibility_epsilon > self.applicant_budget:
            raise ValueError("feasibility_epsilon is larger than applicant_budget")
        if self.study_epsilon > self.project_budget:
            raise ValueError("study_epsilon is larger than project_budget")
        return self


class ExtractPolicy(_Frozen):
    k: int = Field(DEFAULT_K, ge=2)
    l: int = Field(DEFAULT_L, ge=1)  # noqa: E741 - the l of l-diversity
    max_suppression: float = Field(DEFAULT_MAX_SUPPRESSION, ge=0, lt=1)
    date_shift_days: int = Field(DEFAULT_DATE_SHIFT_DAYS, ge=0, le=3650)
    keep_free_text: bool = False


class Policy(_Frozen):
    """A node's disclosure policy. Build with `load_policy` / `parse_policy`."""

    policy: str = Field(min_length=1, max_length=100, description="The policy's name.")
    min_cell: int = Field(DEFAULT_MIN_CELL, ge=1)
    rounding: int = Field(DEFAULT_ROUNDING, ge=1)
    complementary_suppression: bool = DEFAULT_COMPLEMENTARY_SUPPRESSION
    statistic_digits: int = Field(DEFAULT_STATISTIC_DIGITS, ge=1, le=17)
    distribution: DistributionPolicy = DistributionPolicy()
    dominance: DominancePolicy = DominancePolicy()
    purposes: tuple[str, ...] = DEFAULT_PURPOSES
    output_types: tuple[str, ...] = DEFAULT_OUTPUT_TYPES
    dp: DPPolicy = DPPolicy()
    extract: ExtractPolicy = ExtractPolicy()

    @model_validator(mode="after")
    def _known_outputs(self) -> Policy:
        unknown = set(self.output_types) - set(DEFAULT_OUTPUT_TYPES)
        if unknown:
            raise ValueError(
                f"unknown output types {sorted(unknown)}; known: {DEFAULT_OUTPUT_TYPES}"
            )
        return self

    @property
    def name(self) -> str:
        return self.policy

    def normalised(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def version(self) -> str:
        """sha256 of the normalised content (sorted keys, defaults filled in), 12 hex digits."""
        blob = orjson.dumps(self.normalised(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.policy}@{self.version}"

    @property
    def suppressed_display(self) -> str:
        return f"<{self.min_cell}"

    def allows_purpose(self, purpose: str) -> bool:
        return purpose in self.purposes

    def allows_output(self, output_type: str) -> bool:
        return output_type in self.output_types


class PolicyRefusal(UserError):
    """The node's policy forbids this purpose or output type."""

    exit_code = 3
    http_status = 403


def require_allowed(policy: Policy, purpose: str | None, output_type: str) -> None:
    """Refuse, with the policy's name, a purpose or an output type the node does not release."""
    if not policy.allows_output(output_type):
        raise PolicyRefusal(
            f"policy {policy.label} does not release {output_type!r} outputs "
            f"(it releases: {', '.join(policy.output_types)})"
        )
    if purpose is not None and not policy.allows_purpose(purpose):
        raise PolicyRefusal(
            f"policy {policy.label} does not accept the purpose {purpose!r} "
            f"(it accepts: {', '.join(policy.purposes)})"
        )


#: What a protected result names when the local steward ran it with `--policy none`.
NO_POLICY_LABEL = "none (local steward only: nothing was suppressed, rounded or checked)"


def default_policy(name: str = "default") -> Policy:
    return Policy(policy=name)


def parse_policy(data: Any, source: str = "policy") -> Policy:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a policy is a mapping with at least `policy: NAME`")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {p} does not exist") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy file {p} is not valid YAML: {exc}") from None
    return parse_policy(data, source=str(p))
