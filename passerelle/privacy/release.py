"""Releasing an extract: the node's approval first, the files last, a record either way.

`release_extract(register, request, policy, cohort, pseudonymizer)`:

1. the node's own register must show the project approved for the purpose and the output type
   extract (`EXTRACT_OUTPUT_TYPES`: the single window's name and the policy's), and the policy
   must release extracts for that purpose. A refusal is recorded and raised before the store,
   the pseudonym key or the output folder is touched;
2. the cohort is read and the extract made (k-anonymity, l-diversity, pseudonyms, date shifts);
   a target that cannot be met is recorded as a refusal, with its reason and the cohort size;
3. the files are written to a private staging folder (mode 0700) beside `out` and hashed; the
   register then records the release and, in the same transaction, checks the approval again
   (a revocation during the run refuses it) and moves the folder to `out` before committing.
   `out` holds the files if and only if the register records them as released.

The register is any object with `check_approved` and `record_extract` (the federation's
`NodeRegister`): the privacy package never imports federation. A record holds the project,
purpose, policy, counts, k reached, the folder and each file's sha256; never a patient value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from passerelle.errors import UserError
from passerelle.privacy.extract import ExtractRefused, ExtractSpec
from passerelle.privacy.pipeline import Extract, make_extract, write_extract
from passerelle.privacy.policy import Policy, PolicyRefusal, require_allowed
from passerelle.privacy.pseudonym import Pseudonymizer

#: An approval for either name releases an extract: the single window's output type (what
#: `passerelle node sync` records) and the disclosure policy's (what `node approve` may say).
EXTRACT_OUTPUT_TYPES = ("pseudonymized_extract", "extract")
RELEASED = "released"


@dataclass(frozen=True)
class ExtractRecord:
    """What the node register keeps of one extract: no row, no patient value."""

    project_id: str
    purpose: str
    request_id: str
    spec_sha256: str
    outcome: str  # released | a refusal code
    reason: str = ""
    policy: str = ""
    cohort_size: int | None = None
    records_released: int | None = None
    k: int | None = None
    k_reached: int | None = None
    l: int | None = None  # noqa: E741 - the l of l-diversity
    out_dir: str = ""
    files: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256


class ExtractRegister(Protocol):
    def check_approved(
        self,
        project_id: str,
        purpose: str,
        output_types: Collection[str],
        now: dt.datetime | None = None,
    ) -> Any:
        """The approval, or a UserError whose `code` names the refusal."""

    def record_extract(
        self,
        record: ExtractRecord,
        *,
        output_types: Collection[str] = (),
        publish: Callable[[], None] | None = None,
        now: dt.datetime | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class ExtractRequest:
    project_id: str
    purpose: str
    spec: ExtractSpec
    spec_sha256: str  # of the spec file as given: which request this was
    out: Path
    request_id: str = field(default_factory=lambda: f"extract-{uuid.uuid4().hex[:16]}")


@dataclass(frozen=True)
class Released:
    record: ExtractRecord
    paths: list[Path]
    extract: Extract


def _refusal_code(exc: UserError) -> str | None:
    if isinstance(exc, ExtractRefused):
        return "target_not_met"
    if isinstance(exc, PolicyRefusal):
        return "policy_refused"
    code = getattr(exc, "code", None)  # the register's refusals name themselves
    return code if isinstance(code, str) else None


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder: an extract never overwrites")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _publish(staging: Path, out: Path) -> Callable[[], None]:
    def move() -> None:
        if out.exists():
            out.rmdir()  # empty (checked before); fails if something appeared since
        os.replace(staging, out)

    return move


def release_extract(
    register: ExtractRegister,
    request: ExtractRequest,
    policy: Policy,
    cohort: Callable[[], pa.Table],
    pseudonymizer: Callable[[], Pseudonymizer],
) -> Released:
    """See the module doc. Raises the refusal (recorded) or a UserError (nothing recorded:
    a request that could not be read, a folder that is not empty, a store that is down)."""
    _check_out(request.out)
    base = ExtractRecord(
        request.project_id,
        request.purpose,
        request.request_id,
        request.spec_sha256,
        RELEASED,
        policy=policy.label,
    )
    rows: pa.Table | None = None
    try:
        register.check_approved(request.project_id, request.purpose, EXTRACT_OUTPUT_TYPES)
        require_allowed(policy, request.purpose, "extract")
        rows = cohort()
        extract = make_extract(
            rows,
            request.spec,
            policy,
            pseudonymizer(),
            project=request.project_id,
            purpose=request.purpose,
            extract_id=request.request_id,
        )
    except UserError as exc:
        _record_refusal(register, base, exc, None if rows is None else rows.num_rows)
        raise
    request.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{request.out.name}.partial-", dir=request.out.parent))
    try:
        paths = write_extract(extract, staging)
        sizes = extract.result.evaluation.class_sizes
        risk = extract.report.data
        record = replace(
            base,
            cohort_size=risk["records_in"],
            records_released=risk["records_released"],
            k=extract.result.k,
            k_reached=int(min(sizes)) if len(sizes) else None,
            l=extract.result.l,
            out_dir=str(request.out.resolve()),
            files={p.name: file_sha256(p) for p in paths},
        )
        try:
            register.record_extract(
                record, output_types=EXTRACT_OUTPUT_TYPES, publish=_publish(staging, request.out)
            )
        except UserError as exc:
            _record_refusal(register, base, exc, risk["records_in"])
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return Released(record, [request.out / p.name for p in paths], extract)


def _record_refusal(
    register: ExtractRegister, base: ExtractRecord, exc: UserError, cohort_size: int | None
) -> None:
    code = _refusal_code(exc)
    if code is None:  # not a refusal: a mistake in the request or a failure, not recorded
        return
    register.record_extract(replace(base, outcome=code, reason=str(exc), cohort_size=cohort_size))
