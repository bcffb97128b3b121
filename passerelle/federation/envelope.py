"""The signed envelope (hub -> node) and the signed result (node -> hub).

Both are canonical JSON (orjson, sorted keys, UTC timestamps as ISO 8601 strings) signed with
Ed25519. The envelope carries the study as its serialized spec/model (data, never code: a node
parses it with the study language's own parser) and names the node it is meant for, so an
envelope cannot be replayed against another node. A result carries the SHA-256 of the exact
envelope bytes it answers, so a result cannot be attached to another request.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import orjson

from passerelle.federation.errors import BadSignature, Refused
from passerelle.federation.keys import KeyPair, TrustList

KINDS = ("study", "feasibility")
MODES = ("exact", "dp")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTC datetimes."""
    return orjson.dumps(
        obj, default=_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return t


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise BadSignature("signature is not valid base64") from None


@dataclass(frozen=True)
class Envelope:
    kind: str  # study | feasibility
    node: str  # the node it is meant for
    study: dict[str, Any]  # the serialized study spec/model (data only)
    project_id: str
    request_id: str
    purpose: str
    output_type: str
    nonce: str
    issued_at: str
    expires_at: str
    hub_key_id: str
    mode: str = "exact"  # exact | dp (differentially private release, per the node's policy)

    def to_dict(self) -> dict[str, Any]:
        # shallow (asdict would deep-copy the study): the dict is serialized, never changed
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        if not isinstance(data, dict):
            raise Refused("envelope must be a JSON object", code="malformed", status=400)
        names = set(cls.__dataclass_fields__)
        missing = sorted(names - set(data) - {"mode"})
        extra = sorted(set(data) - names)
        if missing or extra:
            raise Refused(
                f"envelope fields: missing {missing}, unknown {extra}", code="malformed", status=400
            )
        for name in names - {"study"}:
            if not isinstance(data[name], str):
                raise Refused(
                    f"envelope field {name} must be a string", code="malformed", status=400
                )
        if not isinstance(data["study"], dict):
            raise Refused("envelope field study must be an object", code="malformed", status=400)
        if data.get("mode", "exact") not in MODES:
            raise Refused(f"envelope mode must be one of {MODES}", code="malformed", status=400)
        if data["kind"] not in KINDS:
            raise Refused(f"envelope kind must be one of {KINDS}", code="malformed", status=400)
        return cls(**data)

    def issued(self) -> dt.datetime:
        return parse_iso(self.issued_at)

    def expires(self) -> dt.datetime:
        return parse_iso(self.expires_at)


def new_envelope(
    hub: KeyPair,
    *,
    kind: str,
    node: str,
    study: dict[str, Any],
    project_id: str = "",
    request_id: str = "",
    purpose: str = "",
    output_type: str = "aggregates",
    mode: str = "exact",
    ttl_seconds: int = 300,
    now: dt.datetime | None = None,
) -> Envelope:
    now = now or utcnow()
    return Envelope(
        kind=kind,
        node=node,
        study=study,
        project_id=project_id,
        request_id=request_id,
        purpose=purpose,
        output_type=output_type,
        nonce=secrets.token_hex(16),
        issued_at=iso(now),
        expires_at=iso(now + dt.timedelta(seconds=ttl_seconds)),
        hub_key_id=hub.key_id,
        mode=mode,
    )


def sign_envelope(hub: KeyPair, envelope: Envelope) -> dict[str, Any]:
    """The wire form: {"envelope": {...}, "signature": base64}."""
    body = envelope.to_dict()
    return {"envelope": body, "signature": b64(hub.sign(canonical(body)))}


def envelope_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def verify_envelope(signed: Any, trust: TrustList) -> tuple[Envelope, str]:
    """Check the signature against the trust list; return the envelope and its hash.

    Freshness, replay and approval are the node's checks, made after this one."""
    if not isinstance(signed, dict) or set(signed) != {"envelope", "signature"}:
        raise Refused("body must be {envelope, signature}", code="malformed", status=400)
    body = signed["envelope"]
    if not isinstance(body, dict) or not isinstance(signed["signature"], str):
        raise Refused("body must be {envelope, signature}", code="malformed", status=400)
    key_id = body.get("hub_key_id")
    hub = trust.get(key_id) if isinstance(key_id, str) else None
    if hub is None:
        raise BadSignature("envelope signed by a key this node does not trust")
    if not hub.verify(unb64(signed["signature"]), canonical(body)):
        raise BadSignature("envelope signature does not verify")
    return Envelope.from_dict(body), envelope_hash(body)


def sign_result(node: KeyPair, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign a node's answer; payload must hold `envelope_sha256`."""
    body = {**payload, "node": node.name, "node_key_id": node.key_id, "signed_at": iso(utcnow())}
    return {"payload": body, "signature": b64(node.sign(canonical(body)))}


def verify_result(signed: Any, trust: TrustList, expected_envelope_hash: str) -> dict[str, Any]:
    """Check a node's signed answer: a trusted key, a valid signature, our envelope."""
    if not isinstance(signed, dict) or set(signed) != {"payload", "signature"}:
        raise BadSignature("result is not {payload, signature}")
    body = signed["payload"]
    if not isinstance(body, dict) or not isinstance(signed["signature"], str):
        raise BadSignature("result is not {payload, signature}")
    key_id = body.get("node_key_id")
    node = trust.get(key_id) if isinstance(key_id, str) else None
    if node is None:
        raise BadSignature("result signed by a key the hub does not trust")
    if not node.verify(unb64(signed["signature"]), canonical(body)):
        raise BadSignature("result signature does not verify")
    if body.get("envelope_sha256") != expected_envelope_hash:
        raise BadSignature("result answers another envelope")
    return body
