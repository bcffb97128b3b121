"""k-anonymous, l-diverse extracts: a fast generalisation search with local suppression.

The input is a pyarrow Table of cohort rows and an `ExtractSpec` (quasi-identifiers with their
hierarchies, sensitive attributes, columns to keep). The search walks the generalisation
lattice (one level per quasi-identifier) best-first by information loss:

- a node's loss is the weighted mean over quasi-identifiers of 1 - log(d_l) / log(d_0), d_l the
  number of distinct labels at the node's level (0 = exact, 1 = "*"); it only grows when a
  level rises, so the first node popped that meets the target is the one that loses least;
- a node meets the target when the records in equivalence classes smaller than k, or with
  fewer than l distinct values of a sensitive attribute, are at most `max_suppression` of
  all records; those records are suppressed (local suppression);
- before a node is counted, the suppression its projections on pairs of quasi-identifiers
  need (counted once each, memoised) bounds its own from below: most of the lattice is pruned
  without being counted;
- counting is exact: each column is dictionary-encoded once, each level is an array lookup,
  a node's classes are one int64 key per row (mixed radix) counted by a dense bincount (or a
  sort when the key space is large).

If no node meets the target (fewer than k records, a sensitive attribute too uniform, ...),
`ExtractRefused` says why.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.errors import UserError
from passerelle.privacy.hierarchies import Levels, QuasiIdentifier, build_levels
from passerelle.privacy.policy import Policy

#: Nodes the search evaluates at most before it settles for the best node found by a greedy
#: climb (never reached on 6 quasi-identifiers with the built-in hierarchies).
MAX_EVALUATIONS = 20_000


class ExtractRefused(UserError):
    """The extract cannot meet the policy's target: nothing is written."""

    exit_code = 3
    http_status = 422


@dataclass(frozen=True)
class ExtractSpec:
    quasi_identifiers: tuple[QuasiIdentifier, ...]
    sensitive: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    id_column: str = "person_id"
    k: int | None = None  # None: the policy's extract.k
    l: int | None = None  # noqa: E741 - None: the policy's extract.l
    max_suppression: float | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ExtractSpec:
        known = {"quasi_identifiers", "sensitive", "keep", "id_column", "k", "l", "max_suppression"}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"extract: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        qis = data.get("quasi_identifiers") or []
        if not qis:
            raise UserError("extract.quasi_identifiers: at least one is needed")
        try:
            parsed = tuple(QuasiIdentifier.parse(q) for q in qis)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"extract.quasi_identifiers: {exc}") from None
        return cls(
            quasi_identifiers=parsed,
            sensitive=tuple(data.get("sensitive") or ()),
            keep=tuple(data.get("keep") or ()),
            id_column=data.get("id_column", "person_id"),
            k=data.get("k"),
            l=data.get("l"),
            max_suppression=data.get("max_suppression"),
        )


@dataclass
class _Column:
    qi: QuasiIdentifier
    rows: np.ndarray  # per row: index of its distinct value
    levels: Levels
    maps: list[np.ndarray]  # per level: code0 -> code at that level
    labels: list[np.ndarray]  # per level: code -> label
    loss: list[float]  # per level, 0 .. 1

    @property
    def height(self) -> int:
        return len(self.maps) - 1

    def card(self, level: int) -> int:
        return len(self.labels[level])


@dataclass
class Evaluation:
    node: tuple[int, ...]
    suppressed: int  # records in classes that miss k or l
    classes: int  # classes kept
    class_sizes: np.ndarray = field(repr=False)  # sizes of the kept classes
    failing_keys: np.ndarray = field(repr=False)  # class keys to suppress


@dataclass
class ExtractResult:
    table: pa.Table  # generalised rows (id column still present; pseudonymise next)
    node: dict[str, str]  # quasi-identifier -> level name
    evaluation: Evaluation
    records_in: int
    k: int
    l: int  # noqa: E741
    loss: float
    per_qi_loss: dict[str, float]
    evaluated_nodes: int


def _prepare(table: pa.Table, qi: QuasiIdentifier, k: int) -> _Column:
    if qi.column not in table.column_names:
        raise UserError(f"extract: quasi-identifier column {qi.column!r} is not in the cohort")
    col = table.column(qi.column).combine_chunks()
    enc = pc.dictionary_encode(col, null_encoding="encode")
    indices = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    values = enc.dictionary.to_pylist()
    counts = np.bincount(indices, minlength=len(values))
    levels = build_levels(qi, values, counts.tolist(), k)
    maps: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    names: list[str] = []
    for name, level in zip(levels.names, levels.labels, strict=True):
        uniq, inverse = np.unique(np.asarray(level, dtype=object).astype(str), return_inverse=True)
        if labels and len(uniq) == len(labels[-1]) and name != levels.names[-1]:
            continue  # the same partition as the level below (e.g. no rare category): skip
        maps.append(inverse.astype(np.int32).reshape(-1))
        labels.append(uniq)
        names.append(name)
    levels = Levels(tuple(names), [])
    d0 = max(len(labels[0]), 1)
    loss = [0.0 if d0 <= 1 else 1.0 - math.log(len(lab)) / math.log(d0) for lab in labels]
    loss[-1] = 1.0
    for i in range(1, len(loss)):  # keep it monotone along the hierarchy
        loss[i] = max(loss[i], loss[i - 1])
    return _Column(qi, indices, levels, maps, labels, loss)


def _strides(cards: Sequence[int]) -> np.ndarray | None:
    total = 1
    strides = []
    for c in reversed(cards):
        strides.append(total)
        total *= max(int(c), 1)
        if total >= 2**62:
            return None
    return np.array(list(reversed(strides)), dtype=np.int64)


def _keys(codes: Sequence[np.ndarray], cards: Sequence[int]) -> np.ndarray:
    """One int64 key per row for the combination of its codes (exact, no hashing)."""
    strides = _strides(cards)
    if strides is None:  # too many combinations for one int64: exact but slower
        _, inverse = np.unique(np.column_stack(codes), axis=0, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64)
    key = np.array(codes[-1], dtype=np.int64)
    tmp = np.empty_like(key)
    for c, stride in zip(codes[:-1], strides[:-1], strict=True):
        np.multiply(c, stride, out=tmp, casting="unsafe")
        key += tmp
    return key


#: Combinations counted with a dense bincount (one O(rows) pass) below this many; above, with
#: a sort of the keys.
DENSE_LIMIT = 1 << 24


def _class_sizes(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """(class keys, class sizes) of the rows' keys; `space` = number of possible keys."""
    if space <= min(DENSE_LIMIT, 8 * len(key) + 1024):
        counts = np.bincount(key, minlength=space)
        present = np.flatnonzero(counts)
        return present, counts[present]
    uniq, counts = np.unique(key, return_counts=True)
    return uniq, counts


class _Search:
    """Best-first search of the generalisation lattice, with bounds from pairs of columns.

    The records an equivalence class smaller than k holds can only grow when a column is
    dropped from the class: the suppression needed by the projection of a node on any pair of
    quasi-identifiers is a lower bound of the node's own. Pair projections are counted once
    (memoised) and prune most of the lattice before any node is counted in full.
    """

    def __init__(
        self,
        columns: list[_Column],
        sensitive: list[tuple[np.ndarray, int]],
        k: int,
        l: int,  # noqa: E741
        max_suppressed: int,
    ):
        self.columns = columns
        self.sensitive = sensitive
        self.k, self.l, self.max_suppressed = k, l, max_suppressed
        self.n = len(columns[0].rows)
        self.mapped: dict[tuple[int, int], np.ndarray] = {}
        self.pairs: dict[tuple[int, int, int, int], int] = {}
        self.evaluated = 0
        self.pruned = 0

    def codes(self, j: int, level: int) -> np.ndarray:
        key = (j, level)
        if key not in self.mapped:
            col = self.columns[j]
            self.mapped[key] = col.maps[level][col.rows]
        return self.mapped[key]

    def loss(self, node: tuple[int, ...]) -> float:
        weights = [c.qi.weight for c in self.columns]
        total = sum(w * c.loss[lv] for w, c, lv in zip(weights, self.columns, node, strict=True))
        return total / sum(weights)

    def _suppressed(self, codes: list[np.ndarray], cards: list[int]) -> int:
        _, sizes = _class_sizes(_keys(codes, cards), math.prod(cards))
        return int(sizes[sizes < self.k].sum())

    def bound(self, node: tuple[int, ...]) -> int:
        best = 0
        q = len(node)
        for i in range(q):
            for j in range(i + 1, q):
                key = (i, node[i], j, node[j])
                if key not in self.pairs:
                    cards = [self.columns[i].card(node[i]), self.columns[j].card(node[j])]
                    codes = [self.codes(i, node[i]), self.codes(j, node[j])]
                    self.pairs[key] = self._suppressed(codes, cards)
                best = max(best, self.pairs[key])
                if best > self.max_suppressed:
                    return best
        return best

    def evaluate(self, node: tuple[int, ...]) -> Evaluation:
        self.evaluated += 1
        cards = [c.card(lv) for c, lv in zip(self.columns, node, strict=True)]
        key = _keys([self.codes(j, lv) for j, lv in enumerate(node)], cards)
        space = math.prod(cards)
        classes, sizes = _class_sizes(key, space)
        fail = sizes < self.k
        if self.l > 1 and int(sizes[fail].sum()) <= self.max_suppressed:
            index = np.searchsorted(classes, key).astype(np.int64)
            for codes, card in self.sensitive:
                pairs, _ = _class_sizes(index * card + codes, len(classes) * card)
                distinct = np.bincount(pairs // card, minlength=len(classes))
                fail |= distinct < self.l
        suppressed = int(sizes[fail].sum())
        return Evaluation(node, suppressed, int((~fail).sum()), sizes[~fail], classes[fail])

    def successors(self, node: tuple[int, ...]):
        for j, c in enumerate(self.columns):
            if node[j] < c.height:
                yield (*node[:j], node[j] + 1, *node[j + 1 :])

    def run(self) -> Evaluation:
        bottom = (0,) * len(self.columns)
        heap: list[tuple[float, int, tuple[int, ...]]] = [(0.0, 0, bottom)]
        seen: set[tuple[int, ...]] = set()
        while heap and self.evaluated < MAX_EVALUATIONS:
            _, _, node = heapq.heappop(heap)
            if node in seen:
                continue
            seen.add(node)
            if len(node) > 1 and self.bound(node) > self.max_suppressed:
                self.pruned += 1
            else:
                ev = self.evaluate(node)
                if ev.suppressed <= self.max_suppressed:
                    return ev
            for nxt in self.successors(node):
                if nxt not in seen:
                    heapq.heappush(heap, (self.loss(nxt), sum(nxt), nxt))
        top = tuple(c.height for c in self.columns)
        ev = self.evaluate(top)
        if ev.suppressed <= self.max_suppressed:
            return ev
        raise ExtractRefused(self._reason(ev))

    def _reason(self, ev: Evaluation) -> str:
        if self.n < self.k:
            return f"extract refused: the cohort has fewer than k={self.k} persons"
        return (
            f"extract refused: even with every quasi-identifier withheld, "
            f"{ev.suppressed} of {self.n} records miss k={self.k} / l={self.l} (at most "
            f"{self.max_suppressed} may be suppressed); declare fewer sensitive attributes "
            f"or ask for a lower l"
        )


def k_anonymize(table: pa.Table, spec: ExtractSpec, policy: Policy) -> ExtractResult:
    """Generalise and locally suppress `table` so the policy's k and l hold (see module doc)."""
    k = spec.k or policy.extract.k
    ell = spec.l or policy.extract.l
    max_share = (
        policy.extract.max_suppression if spec.max_suppression is None else spec.max_suppression
    )
    if k < policy.extract.k:
        raise ExtractRefused(f"extract refused: k={k} is below the policy's k={policy.extract.k}")
    if ell < policy.extract.l and spec.sensitive:
        raise ExtractRefused(f"extract refused: l={ell} is below the policy's l={policy.extract.l}")
    n = table.num_rows
    if n < k:
        raise ExtractRefused(f"extract refused: the cohort has fewer than k={k} records")
    columns = [_prepare(table, qi, k) for qi in spec.quasi_identifiers]
    sensitive = []
    for name in spec.sensitive:
        if name not in table.column_names:
            raise UserError(f"extract: sensitive column {name!r} is not in the cohort")
        enc = pc.dictionary_encode(table.column(name).combine_chunks(), null_encoding="encode")
        sensitive.append(
            (enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), len(enc.dictionary))
        )
    search = _Search(columns, sensitive, k, ell if spec.sensitive else 1, int(max_share * n))
    ev = search.run()
    out = _apply(table, spec, search, ev)
    return ExtractResult(
        table=out,
        node={c.qi.column: c.levels.names[lv] for c, lv in zip(columns, ev.node, strict=True)},
        evaluation=ev,
        records_in=n,
        k=k,
        l=ell,
        loss=search.loss(ev.node),
        per_qi_loss={c.qi.column: c.loss[lv] for c, lv in zip(columns, ev.node, strict=True)},
        evaluated_nodes=search.evaluated,
    )


def _apply(table: pa.Table, spec: ExtractSpec, search: _Search, ev: Evaluation) -> pa.Table:
    columns = search.columns
    codes = [search.codes(j, lv) for j, lv in enumerate(ev.node)]
    cards = [c.card(lv) for c, lv in zip(columns, ev.node, strict=True)]
    keep_rows = ~np.isin(_keys(codes, cards), ev.failing_keys)
    mask = pa.array(keep_rows)
    data: dict[str, pa.Array] = {}
    if spec.id_column in table.column_names:
        data[spec.id_column] = pc.filter(table.column(spec.id_column), mask)
    for j, (c, lv) in enumerate(zip(columns, ev.node, strict=True)):
        labels = pa.array(c.labels[lv].tolist(), pa.string())
        data[c.qi.column] = labels.take(pa.array(codes[j][keep_rows]))
    for name in (*spec.sensitive, *spec.keep):
        if name not in data:
            if name not in table.column_names:
                raise UserError(f"extract: column {name!r} to keep is not in the cohort")
            data[name] = pc.filter(table.column(name), mask)
    return pa.table(data)
