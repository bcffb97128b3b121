"""Noisy releases at a node, through the privacy package's ledger (OpenDP noise, budgets).

- Feasibility: no approval needed; the study's cohort size (persons), whatever analyses the
  spec lists, released by `BudgetLedger.feasibility_count`: a budget per applicant per period
  kept in the node's own database, the same noisy answer to a repeated query (no averaging).
- DP mode for approved projects: `BudgetLedger.project_study` (a budget per project across all
  its studies, then the node's usual suppression and rounding).

Each release states its noise (mechanism, epsilon, scale, per-cell sd) so the hub can state the
combined noise of a sum over sites.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from passerelle.errors import PasserelleError
from passerelle.federation.envelope import Envelope
from passerelle.federation.errors import Refused
from passerelle.federation.study import Disclosure
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

TABLE = "feasibility"
COLUMN = "persons"
FEASIBILITY_ANALYSES = [{"name": TABLE, "count": "persons"}]
SOURCE = "passerelle.privacy.ledger"


def feasibility_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The same cohort with one analysis: its size in persons."""
    return {**spec, "analyses": FEASIBILITY_ANALYSES}


def _noise(policy: Any, epsilon: float) -> dict[str, Any]:
    from passerelle.privacy.dp import release_for

    dpp = policy.dp
    mechanism = str(getattr(dpp.mechanism, "value", dpp.mechanism))
    scale = release_for(dpp.mechanism, epsilon, 1, dpp.delta).scale
    # discrete Laplace with scale b: sd ~ b*sqrt(2); the discrete Gaussian's scale is its sd
    sd = scale * (math.sqrt(2) if mechanism == "laplace" else 1.0)
    return {"mechanism": mechanism, "scale": scale, "per_cell_sd": sd, "source": SOURCE}


def _refused(exc: Exception, otherwise: str) -> Refused:
    code = "budget_exhausted" if "budget" in str(exc) else otherwise
    return Refused(str(exc), code=code, status=403)


@dataclass
class Feasibility:
    ledger: Any
    policy: Any
    source: str = SOURCE

    def release(
        self, env: Envelope, true_count: Callable[[], int]
    ) -> tuple[StudyResult, dict[str, Any]]:
        try:
            answer = self.ledger.feasibility_count(env.project_id, env.study, true_count)
        except PasserelleError as exc:  # budget spent, or feasibility not allowed by the policy
            raise _refused(exc, "forbidden_output_type") from None
        table = AggregateTable(TABLE, "count", (ResultColumn(COLUMN, "count"),), [(answer.value,)])
        if answer.flags:
            table.flags[(0, COLUMN)] = frozenset(answer.flags)
        result = StudyResult(
            str(env.study.get("study", "study")), "feasibility", [table], policy=answer.policy
        )
        dp = {
            **_noise(self.policy, answer.epsilon),
            "epsilon": answer.epsilon,
            "cached": answer.cached,
            "remaining": answer.remaining,
        }
        return result, dp


@dataclass
class ProjectDP:
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
        try:
            released = self.ledger.project_study(env.project_id, env.study, raw)
        except PasserelleError as exc:
            raise _refused(exc, "dp_not_allowed") from None
        dpp = self.policy.dp
        # as the ledger splits it: the study's epsilon evenly over its count columns
        parts = max(1, sum(1 for t in raw.tables for c in t.columns if c.kind == "count"))
        per_cell = dpp.study_epsilon / parts
        return released, {
            **_noise(self.policy, per_cell),
            "epsilon": dpp.study_epsilon,
            "epsilon_per_cell": per_cell,
            "note": "person counts; entry counts have sensitivity max_entries_per_person",
        }


def ledger_for(disclosure: Disclosure, engine: Engine) -> tuple[Feasibility, ProjectDP]:
    """Both releases over one ledger in the node's own database."""
    from passerelle.privacy.ledger import BudgetLedger, create_ledger_tables

    create_ledger_tables(engine)
    ledger = BudgetLedger(engine, disclosure.policy)
    return Feasibility(ledger, disclosure.policy), ProjectDP(ledger, disclosure.policy)
