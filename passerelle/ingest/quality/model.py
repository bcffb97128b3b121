"""What a check is and what it found."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Category(StrEnum):
    conformance = "conformance"
    completeness = "completeness"
    plausibility = "plausibility"


class Status(StrEnum):
    passed = "pass"
    failed = "fail"
    not_applicable = "not applicable"  # the table is empty or absent


@dataclass(frozen=True)
class CheckResult:
    check: str  # e.g. isRequired, isPrimaryKey, fkPerson, plausibleStartBeforeEnd
    category: Category
    table: str
    field: str | None
    description: str
    threshold_pct: float  # fails when failing/denominator*100 > threshold
    failing: int
    denominator: int
    status: Status
    detail: str = ""

    @property
    def pct(self) -> float:
        return 100.0 * self.failing / self.denominator if self.denominator else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["category"] = self.category.value
        d["status"] = self.status.value
        d["pct"] = round(self.pct, 4)
        return d


def judge(failing: int, denominator: int, threshold_pct: float) -> Status:
    if denominator == 0:
        return Status.not_applicable
    return Status.failed if 100.0 * failing / denominator > threshold_pct else Status.passed
