"""Convert an ATLAS / OHDSI Circe cohort definition (JSON) into a Passerelle study spec.

What converts (Circe -> spec):

- concept sets: items with ``includeDescendants`` / ``isExcluded`` -> ``concepts`` /
  ``exact`` / ``exclude`` / ``exclude_exact`` with ``descendants: true`` (exactly the same set);
- primary criteria: each criterion -> an entry event (several -> ``any_of``); concept set,
  ``OccurrenceStartDate``, ``ValueAsNumber`` (every operator: strict ``gt`` / ``lt``, negated
  ``!bt`` / ``!eq`` -> ``not_between``), ``ValueAsConcept``, ``Unit``; ``CorrelatedCriteria``
  -> ``criteria`` on that entry event (applied before the occurrence pick, as Circe does);
- ``ObservationWindow`` -> the entry's ``observation_window`` (Circe keeps only primary events
  inside an observation period with the window, then applies the limit: ``occurrence: first``
  is the first event *with* the window) and the cohort's ``observation`` (which then loses no
  entry; it caps the exit at the period's end, as Circe does);
- ``First: true`` on a single criterion -> ``occurrence: first`` picked before everything else
  (as Circe picks a criterion's first event inside the criterion): its date range becomes the
  cohort ``period``, its correlated criteria and the observation window cohort rules;
- limits: the primary limit -> ``occurrence``; the qualified limit (only when
  ``AdditionalCriteria`` is given: Circe ignores it otherwise) and the expression limit ->
  ``qualified_occurrence`` when criteria lie before them, else ``occurrence``. A qualified
  limit between additional criteria and inclusion rules is named as a problem;
- additional criteria and inclusion rules (``ALL`` / ``ANY`` / ``AT_LEAST 1`` groups, nested;
  correlated criteria with start windows and occurrence counts ``at least`` / ``at most`` /
  ``exactly``; ``IgnoreObservationPeriod: false`` -> ``observed: true``) -> ``criteria``, named
  after the rules; ``Age`` / ``Gender`` demographic criteria of ``ALL`` rules -> ``demographics``;
- end strategy: none -> ``observation_end``; ``DateOffset`` StartDate -> ``{days}``, EndDate ->
  ``{event_end}``; ``CustomEra`` on the entry's own drug concept set -> ``{exposure}``;
  ``CollapseSettings.EraPad`` -> ``collapse_days``.

Anything else with a value (censoring criteria, censor window, ``UseEventEnd``,
``RestrictVisit``, distinct counts, type concepts, criteria-level age/gender, source-concept
filters, ...) is named as a *problem* with its JSON path; nothing is silently dropped and
nothing guessed. Documented differences that only matter at the edges (Circe's +1 day for
events without an end date) are reported as *notes*.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.errors import UserError

DOMAINS = {
    "ConditionOccurrence": "condition",
    "DrugExposure": "drug",
    "DrugEra": "drug_era",
    "ConditionEra": "condition_era",
    "ProcedureOccurrence": "procedure",
    "Measurement": "measurement",
    "Observation": "observation",
    "VisitOccurrence": "visit",
    "DeviceExposure": "device",
    "Death": "death",
}
DATE_OPS = ("lt", "lte", "gt", "gte", "eq", "bt")
VALUE_OPS = ("lt", "lte", "eq", "!eq", "gt", "gte", "bt", "!bt")
LIMITS = {"First": "first", "Last": "last", "All": "all"}


class AtlasError(UserError):
    """The file is not a Circe cohort definition at all."""


@dataclass
class Conversion:
    """A converted spec (dict), the parts that could not be converted, and notes."""

    spec: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems


def _empty(v: Any) -> bool:
    return v is None or v is False or v == [] or v == {} or v == ""


def _name(text: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\- ]+", " ", text or "")
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" -_.")[:80].strip()
    return cleaned or fallback


class _Converter:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.codesets: dict[Any, dict[str, Any] | None] = {}

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    # -- concept sets ------------------------------------------------------------------------
    def concept_sets(self) -> None:
        for i, cs in enumerate(self.data.get("ConceptSets") or []):
            path = f"ConceptSets[{i}]"
            inc_d: list[int] = []
            inc_x: list[int] = []
            exc_d: list[int] = []
            exc_x: list[int] = []
            ok = True
            for j, item in enumerate((cs.get("expression") or {}).get("items") or []):
                cid = (item.get("concept") or {}).get("CONCEPT_ID")
                if not isinstance(cid, int):
                    self.problem(f"{path}.items[{j}]", "has no concept id")
                    ok = False
                    continue
                if item.get("includeMapped"):
                    self.problem(f"{path}.items[{j}]", "includeMapped (source concepts mapped to "
                                 "this one) is not supported")  # fmt: skip
                    ok = False
                desc = bool(item.get("includeDescendants"))
                target = (
                    (exc_d if desc else exc_x)
                    if item.get("isExcluded")
                    else (inc_d if desc else inc_x)
                )
                if cid not in target:
                    target.append(cid)
            if not (inc_d or inc_x):
                self.codesets[cs.get("id")] = None
                self.problem(path, f"concept set {cs.get('name')!r} includes no concept")
                continue
            if not ok:
                self.codesets[cs.get("id")] = None
                continue
            out: dict[str, Any]
            if inc_d or exc_d:
                out = {"concepts": inc_d, "descendants": True, "exact": inc_x, "exclude": exc_d,
                       "exclude_exact": exc_x}  # fmt: skip
            else:
                out = {"concepts": inc_x, "exclude": exc_x}
            self.codesets[cs.get("id")] = {k: v for k, v in out.items() if v not in ([], None)}

    # -- events ------------------------------------------------------------------------------
    def event(
        self, path: str, crit: Any, primary: bool = False
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(event block, extras: first flag, dates) for one Circe criterion."""
        extras: dict[str, Any] = {}
        if not isinstance(crit, dict) or len(crit) != 1:
            self.problem(path, "is not a single Circe criterion")
            return None, extras
        ((kind, body),) = crit.items()
        path = f"{path}.{kind}"
        domain = DOMAINS.get(kind)
        if domain is None:
            self.problem(path, f"{kind} criteria are not supported")
            return None, extras
        ok = True
        block: dict[str, Any] = {domain: {}}
        for key, value in (body or {}).items():
            kp = f"{path}.{key}"
            if key == "CodesetId":
                if value is None:
                    continue
                if value not in self.codesets:
                    self.problem(kp, f"concept set {value} is not defined")
                    ok = False
                elif (codeset := self.codesets[value]) is None:
                    ok = False  # already reported
                else:
                    block[domain] = dict(codeset)
                    extras["codeset"] = value
            elif key == "First":
                if value and not primary:
                    self.problem(kp, "first occurrence within a criterion is not supported")
                    ok = False
                extras["first"] = bool(value)
            elif key == "OccurrenceStartDate" and value:
                dates = self.date_range(kp, value)
                ok = ok and dates is not None
                if dates is not None:
                    extras["dates"] = dates
                    block["dates"] = dates
            elif key == "ValueAsNumber" and value:
                rng = self.value_range(kp, value)
                ok = ok and rng is not None
                if rng is not None:
                    block["value"] = rng
            elif key in ("ValueAsConcept", "Unit") and value:
                block["value_concepts" if key == "ValueAsConcept" else "unit"] = [
                    c["CONCEPT_ID"] for c in value
                ]
            elif key == "CorrelatedCriteria" and primary:
                if not _empty(value):
                    extras["correlated"] = (kp, value)
            elif key.endswith("TypeExclude"):
                type_key = key[: -len("Exclude")]
                if value and _empty(body.get(type_key)):
                    continue  # excluding an empty list of types restricts nothing
            elif not _empty(value):
                self.problem(kp, "is not supported")
                ok = False
        return (block if ok else None), extras

    def date_range(self, path: str, v: dict[str, Any]) -> dict[str, str | None] | None:
        op, value, extent = v.get("Op"), v.get("Value"), v.get("Extent")
        if op not in DATE_OPS:
            self.problem(path, f"date operator {op!r} is not supported")
            return None
        try:
            day = dt.date.fromisoformat(str(value)[:10])
            end = dt.date.fromisoformat(str(extent)[:10]) if op == "bt" else None
        except ValueError:
            self.problem(path, "has no valid date")
            return None
        one = dt.timedelta(days=1)
        ranges: dict[str, dict[str, str | None]] = {
            "lt": {"end": (day - one).isoformat()},
            "lte": {"end": day.isoformat()},
            "gt": {"start": (day + one).isoformat()},
            "gte": {"start": day.isoformat()},
            "eq": {"start": day.isoformat(), "end": day.isoformat()},
            "bt": {"start": day.isoformat(), "end": end.isoformat() if end else None},
        }
        return ranges[op]

    def value_range(self, path: str, v: dict[str, Any]) -> dict[str, Any] | None:
        """A Circe NumericRange (every operator: lt, lte, eq, !eq, gt, gte, bt, !bt)."""
        op, value, extent = v.get("Op"), v.get("Value"), v.get("Extent")
        if op not in VALUE_OPS:
            self.problem(path, f"value operator {op!r} is not supported")
            return None
        if op in ("bt", "!bt") and extent is None:
            self.problem(path, f"{op!r} without an Extent is not supported")
            return None
        ranges: dict[str, dict[str, Any]] = {
            "lt": {"lt": value},
            "lte": {"max": value},
            "gt": {"gt": value},
            "gte": {"min": value},
            "eq": {"min": value, "max": value},
            "!eq": {"not_between": [value, value]},
            "bt": {"min": value, "max": extent},
            "!bt": {"not_between": [value, extent]},
        }
        return ranges[op]

    # -- criteria ----------------------------------------------------------------------------
    def correlated(self, path: str, c: dict[str, Any]) -> dict[str, Any] | None:
        block, _ = self.event(f"{path}.Criteria", c.get("Criteria"))
        ok = block is not None
        sw = c.get("StartWindow") or {}
        window: dict[str, Any] = {}
        for end in ("Start", "End"):
            bound = sw.get(end) or {}
            days = bound.get("Days")
            window[end.lower()] = None if days is None else days * (bound.get("Coeff") or 1)
        for flag in ("UseIndexEnd", "UseEventEnd"):
            if sw.get(flag):
                self.problem(f"{path}.StartWindow.{flag}", "is not supported (windows are "
                             "relative to the index start, on event starts)")  # fmt: skip
                ok = False
        if not _empty(c.get("EndWindow")):
            self.problem(f"{path}.EndWindow", "is not supported")
            ok = False
        if c.get("RestrictVisit"):
            self.problem(f"{path}.RestrictVisit", "is not supported")
            ok = False
        if not c.get("IgnoreObservationPeriod"):
            window["observed"] = True
        occ = c.get("Occurrence") or {"Type": 2, "Count": 1}
        if occ.get("IsDistinct") or not _empty(occ.get("CountColumn")):
            self.problem(f"{path}.Occurrence", "distinct counts are not supported")
            ok = False
        if not ok or block is None:  # ok implies block is not None
            return None
        kind, count = occ.get("Type"), int(occ.get("Count") or 0)
        block = {**block, "window": window}
        if (kind in (0, 1)) and count == 0:
            return {"exclude": block}
        if kind == 2:
            return {"require": {**block, **({"min_count": count} if count != 1 else {})}}
        if kind == 0:
            return {"require": {**block, "min_count": count, "max_count": count}}
        if kind == 1:
            return {"require": {**block, "min_count": 0, "max_count": count}}
        self.problem(f"{path}.Occurrence.Type", f"{kind!r} is not supported")
        return None

    def group(self, path: str, g: dict[str, Any], demographics: dict[str, Any] | None) -> Any:
        """A criteria group -> criterion dict; True when it restricts nothing; None on error.
        `demographics` (top-level ALL rules only) collects Age / Gender criteria."""
        gtype = g.get("Type", "ALL")
        children: list[Any] = []
        for i, c in enumerate(g.get("CriteriaList") or []):
            children.append(self.correlated(f"{path}.CriteriaList[{i}]", c))
        for i, d in enumerate(g.get("DemographicCriteriaList") or []):
            dp = f"{path}.DemographicCriteriaList[{i}]"
            if demographics is None or gtype != "ALL":
                self.problem(dp, "demographic criteria are only supported in ALL rules at the top")
                children.append(None)
            else:
                children.append(True if self.demographic(dp, d, demographics) else None)
        for i, sub in enumerate(g.get("Groups") or []):
            children.append(self.group(f"{path}.Groups[{i}]", sub, None))
        if any(c is None for c in children):
            return None
        real = [c for c in children if c is not True]
        count = g.get("Count")
        if gtype == "AT_LEAST" and count == 1:
            gtype = "ANY"
        elif gtype == "AT_LEAST" and count == len(children):
            gtype = "ALL"
        if gtype not in ("ALL", "ANY"):
            self.problem(f"{path}.Type", f"{gtype} {count} groups are not supported")
            return None
        if gtype == "ANY" and len(real) < len(children):
            return True  # one child always holds
        if not real:
            return True if gtype == "ALL" or not children else None
        if len(real) == 1:
            return real[0]
        return {"all_of" if gtype == "ALL" else "any_of": real}

    def demographic(self, path: str, d: dict[str, Any], out: dict[str, Any]) -> bool:
        ok = True
        for key, value in d.items():
            if _empty(value):
                continue
            if key == "Age":
                op, v, extent = value.get("Op"), value.get("Value"), value.get("Extent")
                rng = {"gte": {"min": v}, "gt": {"min": v + 1}, "lte": {"max": v}, "lt": {"max": v - 1},
                       "eq": {"min": v, "max": v}, "bt": {"min": v, "max": extent}}.get(op)  # fmt: skip
                if rng is None or "age" in out:
                    self.problem(
                        f"{path}.Age", f"operator {op!r} (or a second age rule) is not supported"
                    )
                    ok = False
                else:
                    out["age"] = rng
            elif key == "Gender":
                if "sex" in out:
                    self.problem(f"{path}.Gender", "a second gender rule is not supported")
                    ok = False
                else:
                    out["sex"] = [c["CONCEPT_ID"] for c in value]
            else:
                self.problem(f"{path}.{key}", "is not supported")
                ok = False
        return ok

    # -- the whole definition ----------------------------------------------------------------
    def convert(self, name: str) -> dict[str, Any]:
        d = self.data
        self.concept_sets()
        pc = d.get("PrimaryCriteria") or {}
        crits = pc.get("CriteriaList") or []
        if not crits:
            self.problem("PrimaryCriteria.CriteriaList", "is empty")
        events: list[dict[str, Any] | None] = []
        extras: list[dict[str, Any]] = []
        for i, c in enumerate(crits):
            block, ex = self.event(f"PrimaryCriteria.CriteriaList[{i}]", c, primary=True)
            events.append(block)
            extras.append(ex)
        cohort: dict[str, Any] = {}
        ow = pc.get("ObservationWindow") or {}
        observation = {
            "prior_days": int(ow.get("PriorDays") or 0),
            "post_days": int(ow.get("PostDays") or 0),
        }
        # Correlated criteria on a primary criterion: a criterion dict, True (restricts
        # nothing) or None (could not convert: already reported).
        correlated: list[Any] = []
        for ex in extras:
            if "correlated" in ex:
                cpath, group = ex["correlated"]
                correlated.append(self.group(cpath, group, None))
            else:
                correlated.append(True)

        ac = d.get("AdditionalCriteria")
        has_additional = not _empty(ac) and bool(
            (ac or {}).get("CriteriaList")
            or (ac or {}).get("Groups")
            or (ac or {}).get("DemographicCriteriaList")
        )
        rules = d.get("InclusionRules") or []
        limits = {}
        for key, limit in (
            ("PrimaryCriteriaLimit", pc.get("PrimaryCriteriaLimit")),
            ("QualifiedLimit", d.get("QualifiedLimit")),
            ("ExpressionLimit", d.get("ExpressionLimit")),
        ):
            value = (limit or {}).get("Type", "All")
            if value not in LIMITS:
                self.problem(f"{key}.Type", f"{value!r} is not supported")
                value = "All"
            limits[key] = LIMITS[value]
        # Circe applies the qualified limit only when AdditionalCriteria is given (even empty).
        qualified = limits["QualifiedLimit"] if ac is not None else "all"

        entry_criteria: list[Any] = []
        cohort_criteria: list[dict[str, Any]] = []
        occurrence = "all"
        firsts = [ex.get("first") for ex in extras]
        if any(firsts):
            # Circe picks a criterion's first event before anything else (its date range,
            # correlated criteria and the observation window then apply to that event).
            if len(crits) == 1 and all(
                k in ("first", "dates", "codeset", "correlated") for k in extras[0]
            ):
                if limits["PrimaryCriteriaLimit"] == "last":
                    self.problem(
                        "PrimaryCriteria", "First together with a Last limit is not supported"
                    )
                occurrence = "first"
                first = events[0]
                if "dates" in extras[0] and first is not None:
                    first.pop("dates", None)
                    cohort["period"] = extras[0]["dates"]
                if isinstance(correlated[0], dict):
                    cohort_criteria.append({"name": "correlated criteria", **correlated[0]})
            else:
                self.problem("PrimaryCriteria.CriteriaList", "First on one of several criteria (or "
                             "with value filters) is not supported")  # fmt: skip
        else:
            # Circe keeps the primary events inside an observation period with the window,
            # filtered by their correlated criteria, then applies the primary limit.
            entry_criteria = correlated
            if limits["PrimaryCriteriaLimit"] != "all":
                occurrence = limits["PrimaryCriteriaLimit"]
            elif qualified != "all" and not has_additional:
                occurrence = qualified  # nothing filters before it: pick among the events
            elif qualified != "all":
                if rules:
                    self.problem("QualifiedLimit", f"{qualified.title()} applies between the "
                                 "additional criteria and the inclusion rules; not supported "
                                 "with both")  # fmt: skip
                cohort["qualified_occurrence"] = qualified
            elif limits["ExpressionLimit"] != "all":
                if has_additional or rules:
                    cohort["qualified_occurrence"] = limits["ExpressionLimit"]
                else:
                    occurrence = limits["ExpressionLimit"]
        blocks = []
        for i, e in enumerate(events):
            if e is None:
                continue
            crit = entry_criteria[i] if entry_criteria else True
            if crit is None:
                continue  # reported
            blocks.append({**e, "criteria": [crit]} if isinstance(crit, dict) else e)
        entry: dict[str, Any]
        entry = dict(blocks[0]) if len(blocks) == 1 and len(events) == 1 else {"any_of": blocks}
        entry["occurrence"] = occurrence
        if not any(firsts):
            entry["observation_window"] = dict(observation)
        qualified_key = cohort.pop("qualified_occurrence", None)
        cohort = {"entry": entry, **cohort}
        cohort["observation"] = observation

        demographics: dict[str, Any] = {}
        criteria: list[dict[str, Any]] = []
        used: set[str] = set()
        groups = []
        if has_additional:
            groups.append(("AdditionalCriteria", d["AdditionalCriteria"], "additional criteria"))
        for i, rule in enumerate(rules):
            groups.append((f"InclusionRules[{i}]", rule.get("expression") or {},
                           rule.get("name") or f"rule {i + 1}"))  # fmt: skip
        for path, g, label in groups:
            crit = self.group(
                f"{path}.expression" if path.startswith("Incl") else path, g, demographics
            )
            if crit is None or crit is True:
                continue
            nm = _name(label, f"rule {len(criteria) + 1}")
            while nm in used:
                nm = nm[:76] + " " + str(len(used) + 1)
            used.add(nm)
            criteria.append({"name": nm, **crit})
        if demographics:
            cohort["demographics"] = demographics
        criteria = cohort_criteria + criteria
        if criteria:
            cohort["criteria"] = criteria
        if qualified_key is not None:
            cohort["qualified_occurrence"] = qualified_key

        exit_ = self.exit(d, events, extras)
        if exit_ is not None:
            cohort["exit"] = exit_
        for key in ("CensoringCriteria", "CensorWindow"):
            if not _empty(d.get(key)):
                self.problem(key, "is not supported")
        return {
            "study": name,
            "cohort": cohort,
            "analyses": [{"name": "persons", "count": "persons"}, {"name": "entries", "count": "entries"},
                         {"name": "attrition", "attrition": True}],
        }  # fmt: skip

    def exit(
        self, d: dict[str, Any], events: list[Any], extras: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        es = d.get("EndStrategy") or {}
        out: dict[str, Any]
        if _empty(es):
            out = {"observation_end": True}
        elif "DateOffset" in es:
            off = es["DateOffset"]
            days = int(off.get("Offset") or 0)
            if off.get("DateField") == "StartDate":
                out = {"days": days}
            elif off.get("DateField") == "EndDate":
                out = {"event_end": {"offset_days": days}}
                self.notes.append("Circe ends an event without an end date on its start date + 1 "
                                  "day; Passerelle on its start date")  # fmt: skip
            else:
                self.problem("EndStrategy.DateOffset.DateField", "is not StartDate or EndDate")
                return None
            if days < 0:
                self.problem("EndStrategy.DateOffset.Offset", "a negative offset is not supported")
                return None
        elif "CustomEra" in es:
            ce = es["CustomEra"]
            drug_entry = len(events) == 1 and events[0] is not None and "drug" in events[0]
            if not drug_entry or extras[0].get("codeset") != ce.get("DrugCodesetId"):
                self.problem("EndStrategy.CustomEra", "an era on another concept set than the "
                             "entry's drug exposures is not supported")  # fmt: skip
                return None
            if not _empty(ce.get("DaysSupplyOverride")):
                self.problem("EndStrategy.CustomEra.DaysSupplyOverride", "is not supported")
                return None
            out = {"exposure": {"gap_days": int(ce.get("GapDays") or 0),
                                "offset_days": int(ce.get("Offset") or 0)}}  # fmt: skip
            self.notes.append("Circe ends a drug exposure without an end date after its days "
                              "supply; Passerelle on its start date")  # fmt: skip
        else:
            self.problem("EndStrategy", f"{sorted(es)} is not supported")
            return None
        cs = d.get("CollapseSettings") or {}
        if cs.get("CollapseType", "ERA") != "ERA":
            self.problem("CollapseSettings.CollapseType", "is not supported")
        pad = int(cs.get("EraPad") or 0)
        if pad:
            out["collapse_days"] = pad
        return out


def convert_atlas(data: dict[str, Any] | str, name: str = "atlas-cohort") -> Conversion:
    """Convert a Circe cohort definition (dict or JSON text) into a spec dict, naming every
    part it could not convert. A converted spec is checked by the parser."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise AtlasError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or "PrimaryCriteria" not in data:
        raise AtlasError("not an ATLAS/Circe cohort definition (no PrimaryCriteria)")
    conv = _Converter(data)
    spec = conv.convert(_name(name, "atlas-cohort"))
    result = Conversion(spec, conv.problems, conv.notes)
    if result.complete:
        from passerelle.query.parse import SpecError, parse_study

        try:
            parse_study(spec)
        except SpecError as exc:
            result.problems.extend(f"converted spec: {p}" for p in exc.problems)
    return result


def convert_file(path: str | Path) -> Conversion:
    p = Path(path)
    return convert_atlas(p.read_text(encoding="utf-8"), name=f"atlas-{p.stem}")
