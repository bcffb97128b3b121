"""Keys and envelopes: signatures, tampering, key files, canonical form."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from passerelle.federation.envelope import (
    canonical,
    envelope_hash,
    new_envelope,
    sign_envelope,
    sign_result,
    verify_envelope,
    verify_result,
)
from passerelle.federation.errors import BadSignature, KeyFileError, Refused
from passerelle.federation.keys import KeyPair, TrustList, load_public, public_b64

SPEC = {"study": "s", "cohort": {"entry": {"condition": {"concepts": [192671]}}}, "analyses": []}


def make(hub: KeyPair, **kw):
    return new_envelope(
        hub, kind="study", node="a", study=SPEC, project_id="p1", purpose="research", **kw
    )


def test_canonical_sorts_keys_and_is_compact():
    assert canonical({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == b'{"a":[1,{"c":3,"d":2}],"b":1}'


def test_signed_envelope_verifies_and_tampering_is_refused():
    hub = KeyPair.generate("hub")
    trust = TrustList([hub.public])
    signed = sign_envelope(hub, make(hub))
    env, digest = verify_envelope(signed, trust)
    assert env.project_id == "p1" and digest == envelope_hash(signed["envelope"])
    for field, value in [("project_id", "p2"), ("purpose", "market_access"), ("node", "b")]:
        bad = {"envelope": {**signed["envelope"], field: value}, "signature": signed["signature"]}
        with pytest.raises(BadSignature):
            verify_envelope(bad, trust)
    study = {**SPEC, "cohort": {"entry": {"condition": {"concepts": [1]}}}}
    with pytest.raises(BadSignature):
        verify_envelope(
            {"envelope": {**signed["envelope"], "study": study}, "signature": signed["signature"]},
            trust,
        )


def test_envelope_from_an_untrusted_key_is_refused():
    hub, other = KeyPair.generate("hub"), KeyPair.generate("mallory")
    with pytest.raises(BadSignature):
        verify_envelope(sign_envelope(other, make(other)), TrustList([hub.public]))
    # same key id claimed, signed with another key
    forged = sign_envelope(other, make(hub))
    with pytest.raises(BadSignature):
        verify_envelope(forged, TrustList([hub.public]))


def test_malformed_envelopes_are_refused():
    hub = KeyPair.generate("hub")
    trust = TrustList([hub.public])
    signed = sign_envelope(hub, make(hub))
    for body in [None, [], {"envelope": signed["envelope"]}, {**signed, "extra": 1}]:
        with pytest.raises(Refused):
            verify_envelope(body, trust)
    with pytest.raises(BadSignature):
        verify_envelope({**signed, "signature": "not base64!"}, trust)


def test_expiry_fields_are_utc_and_ordered():
    hub = KeyPair.generate("hub")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    env = make(hub, now=now, ttl_seconds=60)
    assert env.issued_at == "2026-01-02T03:04:05Z" and env.expires() - env.issued() == dt.timedelta(
        seconds=60
    )


def test_signed_result_binds_node_and_envelope():
    node = KeyPair.generate("a")
    trust = TrustList([node.public])
    signed = sign_result(node, {"envelope_sha256": "abc", "result": {"tables": [[1, 2]]}})
    assert verify_result(signed, trust, "abc")["node"] == "a"
    with pytest.raises(BadSignature):
        verify_result(signed, trust, "other")
    tampered = {
        "payload": {**signed["payload"], "result": {"tables": [[1, 3]]}},
        "signature": signed["signature"],
    }
    with pytest.raises(BadSignature):
        verify_result(tampered, trust, "abc")


def test_key_files(tmp_path):
    key = KeyPair.generate("chu-a")
    private, public = key.write(tmp_path)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert KeyPair.load(private).key_id == key.key_id
    assert load_public("chu-a", path=public).key_id == key.key_id
    assert load_public("chu-a", inline=public_b64(key.public.key)).key_id == key.key_id
    assert "PRIVATE" not in repr(key) and key.key_id in repr(key)
    with pytest.raises(KeyFileError):
        key.write(tmp_path)  # never overwrites
    os.chmod(private, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        KeyPair.load(private)
    with pytest.raises(KeyFileError):
        load_public("x", inline="AAAA")


def test_envelope_mode_defaults_to_exact_and_is_checked():
    hub = KeyPair.generate("hub")
    trust = TrustList([hub.public])
    signed = sign_envelope(hub, make(hub))
    assert verify_envelope(signed, trust)[0].mode == "exact"
    body = {**signed["envelope"], "mode": "bogus"}
    forged = sign_envelope(hub, make(hub))
    forged["envelope"] = body
    from passerelle.federation.envelope import b64

    forged["signature"] = b64(hub.sign(canonical(body)))
    with pytest.raises(Refused, match="mode"):
        verify_envelope(forged, trust)
