"""Synthetic cohort rows for extract tests and benchmarks (seeded; no real person).

Six quasi-identifiers with realistic shapes: age (normal around 55, 0-99), sex, a French
code postal (every département), an index date over ten years, a skewed visit type and a
skewed ethnic-origin category; plus a sensitive diagnosis and a kept measurement date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.privacy.hierarchies import REGION_OF_DEPARTEMENT

QUASI_IDENTIFIERS = [
    {"column": "age", "hierarchy": "age"},
    {"column": "sex", "hierarchy": "generic"},
    {"column": "postal_code", "hierarchy": "postal_code"},
    {"column": "index_date", "hierarchy": "date"},
    {"column": "visit_type", "hierarchy": "category"},
    {"column": "origin", "hierarchy": "category"},
]


def synthetic_cohort(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    deps = np.array(sorted(REGION_OF_DEPARTEMENT))
    prefix = np.array([d if d not in ("2A", "2B") else "20" for d in deps])
    corsica = np.array(["0" if d == "2A" else "5" if d == "2B" else "" for d in deps])
    dep = rng.integers(0, len(deps), n)
    tail = rng.integers(0, 100, n) * 10
    postal = [
        (p + c + f"{t:03d}")[:5] if len(p) == 2 else p + f"{t // 10:02d}"
        for p, c, t in zip(prefix[dep], corsica[dep], tail, strict=True)
    ]
    epoch = dt.date(2015, 1, 1).toordinal() - dt.date(1970, 1, 1).toordinal()
    days = rng.integers(0, 3650, n) + epoch
    index_date = pa.array(days.astype(np.int32)).cast(pa.date32())
    measured = pc.add(pa.array(days.astype(np.int64)), pa.array(rng.integers(0, 60, n)))
    return pa.table(
        {
            "person_id": pa.array(rng.permutation(n).astype(np.int64) * 7 + 1000),
            "age": pa.array(np.clip(rng.normal(55, 20, n), 0, 99).astype(np.int64)),
            "sex": pa.array(rng.choice(np.array(["F", "M"]), n)),
            "postal_code": pa.array(postal, pa.string()),
            "index_date": index_date,
            "visit_type": pa.array(
                rng.choice(
                    np.array(["inpatient", "outpatient", "emergency", "day", "home"]),
                    n,
                    p=[0.4, 0.4, 0.15, 0.04, 0.01],
                )
            ),
            "origin": pa.array(
                rng.choice(np.array(["a", "b", "c", "d", "e"]), n, p=[0.6, 0.2, 0.1, 0.07, 0.03])
            ),
            "diagnosis": pa.array(rng.choice(np.array([f"D{i:02d}" for i in range(30)]), n)),
            "measured_on": measured.cast(pa.int32()).cast(pa.date32()),
            "diagnosis_source_value": pa.array(["free text"] * n),
        }
    )
