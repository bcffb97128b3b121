"""Local accounts: argon2 hashes, expiring revocable tokens stored as hashes, throttling,
node API keys; no secret in logs or in the database."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from passerelle.access.accounts import Accounts
from passerelle.access.enums import OrgType, Role
from passerelle.access.errors import Conflict, Forbidden, TooManyAttempts, Unauthenticated
from passerelle.access.models import Token, User
from passerelle.access.schemas import ApiKeyIn, OrgIn, UserIn, UserPatch

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(ctx):
    return Accounts(ctx)


@pytest.fixture
def user(accounts):
    org = accounts.create_org(None, OrgIn(name="CHU Test", type=OrgType.HOSPITAL))
    return accounts.create_user(
        None,
        org.id,
        UserIn(email="Ana@CHU.example", name="Ana", password=PASSWORD, roles=[Role.REVIEWER]),
    )


def test_login_issues_an_expiring_token_stored_only_as_a_hash(ctx, accounts, user, clock, caplog):
    caplog.set_level(logging.DEBUG)
    tok = accounts.login("ana@chu.example", PASSWORD)
    p = accounts.authenticate(tok.token)
    assert p.user_id == user.id and p.roles == {Role.REVIEWER}
    with ctx.db.read() as s:
        stored = s.scalars(select(Token.token_hash)).all()
        pw = s.scalar(select(User.password_hash))
    assert tok.token not in stored and pw.startswith("$argon2")
    assert tok.token not in caplog.text and PASSWORD not in caplog.text
    clock.advance(minutes=ctx.settings.token_ttl_minutes + 1)
    with pytest.raises(Unauthenticated, match="expired"):
        accounts.authenticate(tok.token)


def test_logout_revokes(accounts, user):
    tok = accounts.login("ana@chu.example", PASSWORD)
    accounts.logout(tok.token)
    with pytest.raises(Unauthenticated):
        accounts.authenticate(tok.token)


def test_wrong_password_and_unknown_user_give_the_same_answer(accounts, user):
    with pytest.raises(Unauthenticated, match="wrong e-mail or password"):
        accounts.login("ana@chu.example", "nope nope nope")
    with pytest.raises(Unauthenticated, match="wrong e-mail or password"):
        accounts.login("nobody@chu.example", PASSWORD)


def test_throttling_after_repeated_failures(ctx, accounts, user, clock):
    for _ in range(ctx.settings.login_max_failures):
        with pytest.raises(Unauthenticated):
            accounts.login("ana@chu.example", "wrong password!")
    with pytest.raises(TooManyAttempts):
        accounts.login("ana@chu.example", PASSWORD)  # even the right password
    clock.advance(minutes=ctx.settings.login_window_minutes + 1)
    assert accounts.login("ana@chu.example", PASSWORD).token


def test_disabled_account_cannot_log_in_and_its_tokens_stop(accounts, user):
    tok = accounts.login("ana@chu.example", PASSWORD)
    accounts.update_user(None, user.id, UserPatch(active=False))
    with pytest.raises(Unauthenticated):
        accounts.authenticate(tok.token)
    with pytest.raises(Unauthenticated):
        accounts.login("ana@chu.example", PASSWORD)


def test_api_keys_for_nodes(accounts, user):
    key = accounts.create_api_key(None, user.organisation_id, ApiKeyIn(name="node-1"))
    assert key.key and key.key.startswith("psk_")
    p = accounts.authenticate(key.key)
    assert p.kind == "node" and p.organisation_id == user.organisation_id and not p.roles
    assert [k.key for k in accounts.list_api_keys(None, user.organisation_id)] == [None]
    accounts.revoke_api_key(None, key.id)
    with pytest.raises(Unauthenticated):
        accounts.authenticate(key.key)
    with pytest.raises(Conflict):
        accounts.revoke_api_key(None, key.id)


def test_admins_manage_only_their_own_organisation(ctx, seeded):
    accounts = Accounts(ctx)
    admin_a = seeded.p("hopa", Role.ADMIN)
    accounts.create_user(admin_a, seeded.orgs["hopa"], UserIn(email="x@hopa.example", name="X"))
    with pytest.raises(Forbidden):
        accounts.create_user(admin_a, seeded.orgs["hopb"], UserIn(email="y@b.example", name="Y"))
    with pytest.raises(Forbidden):
        accounts.create_user(
            seeded.p("hopa", Role.STEWARD),
            seeded.orgs["hopa"],
            UserIn(email="z@hopa.example", name="Z"),
        )
    with pytest.raises(Conflict):
        accounts.create_user(admin_a, seeded.orgs["hopa"], UserIn(email="X@hopa.example", name="X"))


def test_oidc_login_links_an_existing_account_by_email(accounts, user):
    tok = accounts.login_oidc("sub-123", "ana@chu.example")
    assert accounts.authenticate(tok.token).user_id == user.id
    assert accounts.authenticate(accounts.login_oidc("sub-123", None).token).user_id == user.id
    with pytest.raises(Forbidden):
        accounts.login_oidc("sub-999", "stranger@example.org")
