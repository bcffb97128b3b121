"""Differentially private counts through OpenDP measurements.

A count has sensitivity 1 when each person adds at most one to it (person counts, one cell of a
breakdown), `max_entries_per_person` for entry counts. The noise is integer-valued:

- ``laplace``: OpenDP's discrete Laplace (`make_laplace` on an integer domain), pure
  epsilon-DP with scale sensitivity / epsilon;
- ``gaussian``: OpenDP's discrete Gaussian (`make_gaussian`), rho-zCDP, its scale found by
  `binary_search_param` so that the zCDP -> (epsilon, delta) conversion spends exactly the
  epsilon asked for at the policy's delta.

The privacy cost of every measurement is read back from OpenDP (`measurement.map`) and checked
against what the ledger charges; the noise itself is drawn by OpenDP's sampler (a CSPRNG).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

from passerelle.privacy.policy import Mechanism

dp.enable_features("contrib")

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CountRelease:
    mechanism: Mechanism
    epsilon: float
    delta: float
    sensitivity: int
    scale: float


@lru_cache(maxsize=256)
def _measurement(
    mechanism: Mechanism, epsilon: float, sensitivity: int, delta: float
) -> tuple[Any, float]:
    domain = dp.atom_domain(T=int)
    metric = dp.absolute_distance(T=int)
    if mechanism is Mechanism.laplace:
        scale = sensitivity / epsilon
        meas = dp.m.make_laplace(domain, metric, scale=scale)
        spent = meas.map(sensitivity)
        if spent > epsilon + _TOLERANCE:
            raise ValueError("OpenDP's discrete Laplace spends more than the epsilon asked for")
        return meas, scale

    def approx(scale: float) -> Any:
        gauss = dp.m.make_gaussian(domain, metric, scale=scale)
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gauss), delta)

    scale = dp.binary_search_param(approx, d_in=sensitivity, d_out=(epsilon, delta))
    meas = dp.m.make_gaussian(domain, metric, scale=scale)
    eps, _ = approx(scale).map(sensitivity)
    if eps > epsilon + _TOLERANCE:
        raise ValueError("OpenDP's discrete Gaussian spends more than the epsilon asked for")
    return meas, scale


def release_for(
    mechanism: Mechanism, epsilon: float, sensitivity: int, delta: float
) -> CountRelease:
    _, scale = _measurement(Mechanism(mechanism), float(epsilon), int(sensitivity), float(delta))
    return CountRelease(Mechanism(mechanism), epsilon, delta, sensitivity, scale)


def noisy_count(
    value: int, *, epsilon: float, sensitivity: int = 1, mechanism: Mechanism, delta: float
) -> int:
    """One noisy release of `value` costing `epsilon` (and `delta` for the Gaussian)."""
    meas, _ = _measurement(Mechanism(mechanism), float(epsilon), int(sensitivity), float(delta))
    return int(meas(int(value)))
