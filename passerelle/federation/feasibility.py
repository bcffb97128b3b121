"""Feasibility counts at a node: no approval needed, released only with calibrated noise.

Uses the privacy package's feasibility API when it exists (budget ledger per applicant, the
same noisy answer to a repeated query). Until then an INTERIM release adds Laplace noise with
OpenDP to every count (sensitivity 1 per table: one person is in one cell of a breakdown;
the node's epsilon is split evenly across the study's tables), withholds every other number,
and keeps no budget: the node's /health says so.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from passerelle.federation.envelope import Envelope
from passerelle.federation.study import Disclosure
from passerelle.query.result import AggregateTable, StudyResult


class Feasibility(Protocol):
    source: str

    def release(self, result: StudyResult, env: Envelope) -> tuple[StudyResult, dict[str, Any]]:
        """The noisy result and its DP description: {mechanism, epsilon, scale, per_cell_sd}."""
        ...


@dataclass
class PrivacyFeasibility:
    source = "passerelle.privacy"
    fn: Any
    disclosure: Disclosure

    def release(self, result: StudyResult, env: Envelope) -> tuple[StudyResult, dict[str, Any]]:
        out = self.fn(result, self.disclosure.policy, applicant=env.project_id)
        if isinstance(out, tuple):
            released, dp = out
        else:
            released, dp = out, dict(getattr(out, "dp", {}) or {})
        return released, dp


@dataclass
class InterimLaplace:
    epsilon: float
    source = "passerelle.federation.feasibility (interim, no budget ledger)"

    def release(self, result: StudyResult, env: Envelope) -> tuple[StudyResult, dict[str, Any]]:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        n_tables = max(1, len(result.tables))
        eps = self.epsilon / n_tables
        scale = 1.0 / eps
        meas = dp.m.make_laplace(dp.atom_domain(T=float), dp.absolute_distance(T=float), scale)
        tables = []
        for t in result.tables:
            flags: dict[tuple[int, str], frozenset[str]] = {}
            rows = []
            for i, row in enumerate(t.rows):
                out = list(row)
                for j, col in enumerate(t.columns):
                    if col.kind == "count" and isinstance(row[j], (int, float)):
                        out[j] = max(0, round(meas(float(row[j]))))
                        flags[(i, col.name)] = frozenset({"noisy"})
                    elif col.kind != "dimension":
                        out[j] = None
                        flags[(i, col.name)] = frozenset({"suppressed"})
                rows.append(tuple(out))
            tables.append(AggregateTable(t.name, t.analysis, t.columns, rows, flags))
        released = StudyResult(result.study, result.engine, tables, policy="feasibility (interim)")
        sd = 2**0.5 * scale
        return released, {
            "mechanism": "laplace",
            "epsilon": self.epsilon,
            "epsilon_per_table": eps,
            "scale": scale,
            "per_cell_sd": sd,
            "source": self.source,
        }


def feasibility_for(disclosure: Disclosure, epsilon: float) -> Feasibility:
    try:
        mod = importlib.import_module("passerelle.privacy.feasibility")
    except ModuleNotFoundError as exc:
        if not (exc.name and exc.name.startswith("passerelle")):
            raise
        mod = None
    fn = getattr(mod, "feasibility", None) if mod is not None else None
    if callable(fn) and disclosure.source == "passerelle.privacy":
        return PrivacyFeasibility(fn, disclosure)
    return InterimLaplace(epsilon)
