"""HTML forms <-> the service layer's inputs: the feasibility builder and the request form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from passerelle.access.schemas import RequestIn
from passerelle.web.pages.core import Form

ENTRY_DOMAINS = ("condition", "drug", "procedure", "measurement", "observation", "visit", "device")
OCCURRENCES = ("first", "all", "last")
MAX_CRITERIA = 3
IDS = re.compile(r"\d{1,12}")


def concept_ids(text: str) -> list[int]:
    return [int(x) for x in IDS.findall(text)][:200]


def _int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass
class Builder:
    """The feasibility builder's fields, as typed and shown back."""

    entry_domain: str = "condition"
    entry_concepts: str = ""
    descendants: bool = True
    occurrence: str = "first"
    prior_days: str = ""
    age_min: str = ""
    age_max: str = ""
    sex: str = ""
    criteria: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_form(cls, f: Form) -> Builder:
        b = cls(
            entry_domain=f.get("entry_domain", "condition"),
            entry_concepts=f.get("entry_concepts"),
            descendants=f.get("descendants") == "on",
            occurrence=f.get("occurrence", "first"),
            prior_days=f.get("prior_days"),
            age_min=f.get("age_min"),
            age_max=f.get("age_max"),
            sex=f.get("sex"),
        )
        for i in range(MAX_CRITERIA):
            b.criteria.append(
                {
                    "kind": f.get(f"c{i}_kind", "require"),
                    "domain": f.get(f"c{i}_domain", "condition"),
                    "concepts": f.get(f"c{i}_concepts"),
                    "start": f.get(f"c{i}_start"),
                    "end": f.get(f"c{i}_end"),
                }
            )
        return b

    def padded(self) -> list[dict[str, str]]:
        blank = {"kind": "require", "domain": "condition", "concepts": "", "start": "", "end": ""}
        return (self.criteria + [dict(blank) for _ in range(MAX_CRITERIA)])[:MAX_CRITERIA]

    def spec(self) -> dict[str, Any]:
        """The study spec (data only); the study language's parser validates it."""
        entry: dict[str, Any] = {
            self.entry_domain: {
                "concepts": concept_ids(self.entry_concepts),
                "descendants": self.descendants,
            },
            "occurrence": self.occurrence,
        }
        cohort: dict[str, Any] = {"entry": entry}
        prior = _int(self.prior_days)
        if prior:
            cohort["observation"] = {"prior_days": prior}
        demo: dict[str, Any] = {}
        age = {
            k: v
            for k, v in (("min", _int(self.age_min)), ("max", _int(self.age_max)))
            if v is not None
        }
        if age:
            demo["age"] = age
        if self.sex in ("female", "male"):
            demo["sex"] = [self.sex]
        if demo:
            cohort["demographics"] = demo
        criteria = []
        for c in self.criteria:
            ids = concept_ids(c.get("concepts", ""))
            if not ids:
                continue
            kind = "exclude" if c.get("kind") == "exclude" else "require"
            criteria.append(
                {
                    kind: {
                        c.get("domain") or "condition": {"concepts": ids, "descendants": True},
                        "window": {
                            "start": _int(c.get("start", "")),
                            "end": _int(c.get("end", "")),
                        },
                    }
                }
            )
        if criteria:
            cohort["criteria"] = criteria
        return {
            "study": "feasibility",
            "cohort": cohort,
            "analyses": [{"name": "size", "count": "persons"}],
        }


def parse_spec_text(text: str) -> dict[str, Any]:
    """A study spec typed as JSON or YAML (data only; never executed)."""
    text = text.strip()
    if not text:
        raise ValueError("empty study spec")
    data = json.loads(text) if text.startswith("{") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a study spec is a mapping")
    return data


@dataclass
class RequestForm:
    values: dict[str, Any]
    errors: list[str]
    data: RequestIn | None


REQUEST_TEXT_FIELDS = (
    "title",
    "description",
    "public_interest",
    "cnil_reference",
    "ethics_approval",
    "period_start",
    "period_end",
)


def request_from_form(f: Form) -> RequestForm:
    values: dict[str, Any] = {k: f.get(k) for k in REQUEST_TEXT_FIELDS}
    values.update(
        purpose=f.all("purpose"),
        gdpr_art6=f.get("gdpr_art6") or None,
        gdpr_art9=f.get("gdpr_art9") or None,
        methodology=f.get("methodology", "none"),
        dataset_ids=[int(x) for x in f.all("dataset_ids") if x.isdigit()],
        domains=f.all("domains"),
        output_type=f.get("output_type", "aggregates"),
        duration_months=f.get("duration_months", "12"),
        studies_text=f.get("studies_text"),
        team_text=f.get("team_text"),
    )
    errors: list[str] = []
    studies: list[dict[str, Any]] = []
    if values["studies_text"]:
        try:
            parsed = (
                json.loads(values["studies_text"])
                if values["studies_text"].lstrip().startswith("[")
                else [parse_spec_text(values["studies_text"])]
            )
            studies = [s for s in parsed if isinstance(s, dict)]
        except (ValueError, yaml.YAMLError) as exc:
            errors.append(f"studies: {str(exc).splitlines()[0]}")
    team = [
        {"name": line.split(",")[0].strip(), "role": ",".join(line.split(",")[1:]).strip()}
        for line in (values["team_text"] or "").splitlines()
        if line.strip()
    ]
    payload = {
        **{
            k: (values[k] or None) if k.startswith("period") else values[k]
            for k in REQUEST_TEXT_FIELDS
        },
        "purpose": values["purpose"],
        "gdpr_art6": values["gdpr_art6"],
        "gdpr_art9": values["gdpr_art9"],
        "methodology": values["methodology"],
        "dataset_ids": values["dataset_ids"],
        "domains": values["domains"],
        "output_type": values["output_type"],
        "duration_months": values["duration_months"] or 12,
        "studies": studies,
        "team": team,
    }
    data = None
    if not errors:
        try:
            data = RequestIn.model_validate(payload)
        except ValidationError as exc:
            for e in exc.errors()[:5]:
                where = ".".join(str(p) for p in e.get("loc", ()))
                errors.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return RequestForm(values, errors, data)


def request_values(req: Any) -> dict[str, Any]:
    """A stored request (RequestOut) as the form's values."""
    return {
        "title": req.title,
        "description": req.description,
        "public_interest": req.public_interest,
        "cnil_reference": req.cnil_reference,
        "ethics_approval": req.ethics_approval,
        "period_start": req.period_start.isoformat() if req.period_start else "",
        "period_end": req.period_end.isoformat() if req.period_end else "",
        "purpose": [p.value for p in req.purpose],
        "gdpr_art6": req.gdpr_art6,
        "gdpr_art9": req.gdpr_art9,
        "methodology": req.methodology.value,
        "dataset_ids": req.dataset_ids,
        "domains": list(req.domains),
        "output_type": req.output_type.value,
        "duration_months": req.duration_months,
        "studies_text": json.dumps(req.studies, indent=2) if req.studies else "",
        "team_text": "\n".join(
            f"{m.get('name', '')}, {m.get('role', '')}".rstrip(", ") for m in req.team
        ),
    }


def blank_request() -> dict[str, Any]:
    return {
        **{k: "" for k in REQUEST_TEXT_FIELDS},
        "purpose": [],
        "gdpr_art6": None,
        "gdpr_art9": None,
        "methodology": "none",
        "dataset_ids": [],
        "domains": [],
        "output_type": "aggregates",
        "duration_months": 12,
        "studies_text": "",
        "team_text": "",
    }
