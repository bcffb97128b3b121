"""The one place where federation meets the study language and the privacy package.

A node receives a study as data (the serialized spec), parses it with the study language's own
parser (`passerelle.query.parse.parse_study`), runs it with `engine_for(store).execute(study)`,
and applies its disclosure policy with `passerelle.privacy.disclosure.protect(result, policy)`
before anything leaves. There is deliberately no fallback: a node that cannot import the
privacy package refuses to start rather than release anything unprotected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passerelle.cdm.stores.base import Store
from passerelle.errors import PasserelleError
from passerelle.federation.errors import Refused
from passerelle.query.result import StudyResult


@dataclass
class StudyLanguage:
    """Parse a spec and run it on a store."""

    source: str
    parse: Callable[[dict[str, Any]], Any]
    run: Callable[[Store, Any], StudyResult]


def _parse(spec: dict[str, Any]) -> Any:
    from passerelle.query.parse import parse_study

    try:
        return parse_study(spec)
    except (PasserelleError, ValueError, TypeError, KeyError) as exc:
        # SpecError names every problem with its field path; never a data value.
        raise Refused(f"invalid study: {exc}", code="invalid_study", status=422) from None


def _run(store: Store, study: Any) -> StudyResult:
    from passerelle.query.engines import engine_for

    return engine_for(store).execute(study)


def study_language() -> StudyLanguage:
    return StudyLanguage("passerelle.query.engines", _parse, _run)


@dataclass
class Disclosure:
    """A node's disclosure policy, as the federation needs it."""

    name: str
    min_cell: int
    rounding: int
    policy: Any
    protect: Callable[[StudyResult, Any], StudyResult]
    purposes: tuple[str, ...] | None = None  # None: the policy does not restrict purposes
    output_types: tuple[str, ...] | None = None
    source: str = "passerelle.privacy"

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "min_cell": self.min_cell, "rounding": self.rounding}


def load_disclosure(path: Path | None) -> Disclosure:
    """The node's policy file, or the privacy package's default policy when none is given."""
    from passerelle.privacy.disclosure import protect
    from passerelle.privacy.policy import default_policy, load_policy

    policy = load_policy(path) if path is not None else default_policy()
    return Disclosure(
        name=policy.label,
        min_cell=policy.min_cell,
        rounding=policy.rounding,
        policy=policy,
        protect=protect,
        purposes=tuple(policy.purposes),
        output_types=tuple(policy.output_types),
    )


def capabilities(language: StudyLanguage, disclosure: Disclosure) -> dict[str, str]:
    return {"study_language": language.source, "disclosure": disclosure.source}
