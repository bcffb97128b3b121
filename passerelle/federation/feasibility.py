"""Feasibility counts at a node: no approval needed, released only with calibrated noise.

A feasibility query is the study's cohort size (persons), whatever analyses the spec lists.
With the privacy package (`BudgetLedger.feasibility_count`): OpenDP noise, a budget per
applicant per period kept in the node's own database, and the same noisy answer to a repeated
query (no averaging attack). Until it exists an INTERIM release adds OpenDP Laplace noise and
keeps no budget; the node's /health names which one is in use.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from passerelle.errors import PasserelleError
from passerelle.federation.envelope import Envelope
from passerelle.federation.errors import Refused
from passerelle.federation.study import Disclosure
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

TABLE = "feasibility"
COLUMN = "persons"
FEASIBILITY_ANALYSES = [{"name": TABLE, "count": "persons"}]


class Feasibility(Protocol):
    source: str

    def release(
        self, env: Envelope, true_count: Callable[[], int]
    ) -> tuple[StudyResult, dict[str, Any]]:
        """The noisy cohort size and its DP description (mechanism, epsilon, per_cell_sd)."""
        ...


def feasibility_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The same cohort with one analysis: its size in persons."""
    return {**spec, "analyses": FEASIBILITY_ANALYSES}


def _result(study: str, value: int | None, flags: frozenset[str], policy: str) -> StudyResult:
    table = AggregateTable(TABLE, "count", (ResultColumn(COLUMN, "count"),), [(value,)])
    if flags:
        table.flags[(0, COLUMN)] = flags
    return StudyResult(study, "feasibility", [table], policy=policy)


@dataclass
class LedgerFeasibility:
    ledger: Any
    policy: Any
    source: str = "passerelle.privacy.ledger"

    def release(
        self, env: Envelope, true_count: Callable[[], int]
    ) -> tuple[StudyResult, dict[str, Any]]:
        dp_mod = importlib.import_module("passerelle.privacy.dp")
        try:
            answer = self.ledger.feasibility_count(env.project_id, env.study, true_count)
        except Refused:
            raise
        except PasserelleError as exc:  # budget spent, or feasibility not allowed by the policy
            code = "budget_exhausted" if "budget" in str(exc) else "forbidden_output_type"
            raise Refused(str(exc), code=code, status=403) from None
        dpp = self.policy.dp
        release = dp_mod.release_for(dpp.mechanism, answer.epsilon, 1, dpp.delta)
        # discrete Laplace with scale b has sd ~ b*sqrt(2); the discrete Gaussian's scale is its sd
        mechanism = str(getattr(dpp.mechanism, "value", dpp.mechanism))
        sd = release.scale * (math.sqrt(2) if mechanism == "laplace" else 1.0)
        dp = {
            "mechanism": mechanism,
            "epsilon": answer.epsilon,
            "scale": release.scale,
            "per_cell_sd": sd,
            "cached": answer.cached,
            "remaining": answer.remaining,
            "source": self.source,
        }
        return _result(
            str(env.study.get("study", "study")), answer.value, answer.flags, answer.policy
        ), dp


@dataclass
class InterimLaplace:
    epsilon: float
    source: str = "passerelle.federation.feasibility (interim, no budget ledger)"

    def release(
        self, env: Envelope, true_count: Callable[[], int]
    ) -> tuple[StudyResult, dict[str, Any]]:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        scale = 1.0 / self.epsilon
        meas = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale)
        value = max(0, int(meas(int(true_count()))))
        info = {
            "mechanism": "laplace",
            "epsilon": self.epsilon,
            "scale": scale,
            "per_cell_sd": math.sqrt(2) * scale,
            "source": self.source,
        }
        return _result(
            str(env.study.get("study", "study")), value, frozenset({"noisy"}), "interim"
        ), info


def feasibility_for(disclosure: Disclosure, epsilon: float, engine: Any) -> Feasibility:
    """The privacy package's ledger on the node's own database when present, else interim."""
    try:
        ledger_mod = importlib.import_module("passerelle.privacy.ledger")
    except ModuleNotFoundError as exc:
        if not (exc.name and exc.name.startswith("passerelle")):
            raise
        ledger_mod = None
    if ledger_mod is not None and disclosure.source == "passerelle.privacy":
        ledger_mod.create_ledger_tables(engine)
        return LedgerFeasibility(
            ledger_mod.BudgetLedger(engine, disclosure.policy), disclosure.policy
        )
    return InterimLaplace(epsilon)


@dataclass
class ProjectDP:
    """DP mode for approved projects: the privacy ledger's `project_study` (a budget per
    project across all its studies, the same answer to a repeated study)."""

    ledger: Any
    policy: Any

    def mode_of(self, env: Envelope) -> str:
        mode = str(getattr(self.policy.dp.mode, "value", self.policy.dp.mode))
        if mode == "required":
            return "dp"
        if env.mode == "dp" and mode != "allowed":
            raise Refused("this node's policy does not allow DP mode", code="dp_not_allowed")
        return env.mode

    def release(self, env: Envelope, raw: StudyResult) -> tuple[StudyResult, dict[str, Any]]:
        dp_mod = importlib.import_module("passerelle.privacy.dp")
        try:
            released = self.ledger.project_study(env.project_id, env.study, raw)
        except PasserelleError as exc:
            code = "budget_exhausted" if "budget" in str(exc) else "dp_not_allowed"
            raise Refused(str(exc), code=code, status=403) from None
        dpp = self.policy.dp
        parts = max(1, sum(1 for t in raw.tables for c in t.columns if c.kind == "count"))
        per_cell = dpp.study_epsilon / parts
        release = dp_mod.release_for(dpp.mechanism, per_cell, 1, dpp.delta)
        mechanism = str(getattr(dpp.mechanism, "value", dpp.mechanism))
        sd = release.scale * (math.sqrt(2) if mechanism == "laplace" else 1.0)
        return released, {
            "mechanism": mechanism,
            "epsilon": dpp.study_epsilon,
            "epsilon_per_cell": per_cell,
            "scale": release.scale,
            "per_cell_sd": sd,
            "note": "per-person counts; entry counts have sensitivity max_entries_per_person",
            "source": "passerelle.privacy.ledger",
        }


def project_dp_for(disclosure: Disclosure, feasibility: Feasibility) -> ProjectDP | None:
    if isinstance(feasibility, LedgerFeasibility):
        return ProjectDP(feasibility.ledger, disclosure.policy)
    return None
