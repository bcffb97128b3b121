"""The HTML pages without a browser (on SQLite and PostgreSQL): sessions, CSRF, roles, language,
the reviewer queue's clocks, form errors, the observatory's CSV, and that every message has a
French translation and no page refers to another site."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from passerelle.access.enums import (
    Domain,
    GdprArt6,
    GdprArt9,
    OrgType,
    OutputType,
    Purpose,
    RequestStatus,
    ReviewStatus,
    Role,
)
from passerelle.access.requests import Requests
from passerelle.access.schemas import RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.observatory.stats import Filters
from passerelle.web import i18n
from passerelle.web.pages import core
from passerelle.web.pages.core import CSRF_COOKIE, SESSION_COOKIE, safe_next
from passerelle.web.pages.hub import slug
from tests.fixtures.appdb import token_for

WEB = Path(core.__file__).resolve().parent.parent
MESSAGE = re.compile(r"""\bt\((?:"([^"]+)"|'([^']+)')""")
CALLED = re.compile(r"""translator\(request\)\("([^"]+)"\)""")


def login_as(client, ctx, seeded, org: str, role: Role) -> None:
    client.cookies.set(SESSION_COOKIE, token_for(ctx, seeded.users[(org, role)]))


def csrf(client) -> str:
    client.get("/")
    return client.cookies.get(CSRF_COOKIE)


def submitted_request(ctx, seeded) -> int:
    ds = Catalog(ctx).create(
        None,
        DatasetIn(title="A", description="d", domains=[Domain.CONDITION], contact_email="a@b.fr"),
        seeded.orgs["hopa"],
    )
    reqs = Requests(ctx)
    p = seeded.p("bio", Role.APPLICANT)
    out = reqs.create(
        p,
        RequestIn(
            title="Survival after bleeding",
            purpose=[Purpose.RESEARCH],
            dataset_ids=[ds.id],
            gdpr_art6=GdprArt6.PUBLIC_TASK,
            gdpr_art9=GdprArt9.RESEARCH,
        ),
    )
    reqs.submit(p, out.id)
    return out.id


# -- sessions, CSRF, roles ---------------------------------------------------------------------


def test_public_pages_render(client, seeded, ctx):
    submitted_request(ctx, seeded)
    for path in ("/", "/catalogue", "/catalogue/1", "/observatory", "/login"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_login_needs_the_form_token_and_sets_an_httponly_session(client, ctx, seeded):
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import UserIn

    Accounts(ctx).create_user(
        None,
        seeded.orgs["bio"],
        UserIn(
            email="ann@bio.example", name="Ann", password="a-long-password", roles=[Role.APPLICANT]
        ),
    )
    form = {"email": "ann@bio.example", "password": "a-long-password", "next": "/requests"}
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 403 and "form expired" in r.text  # no CSRF token
    token = csrf(client)
    r = client.post("/login", data={**form, "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/login", data={**form, "csrf": token, "password": "wrong"})
    assert r.status_code == 401 and "Wrong e-mail or password." in r.text
    r = client.post("/login", data={**form, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/requests"
    cookie = r.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert client.get("/requests").status_code == 200
    r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/requests", follow_redirects=False).status_code == 303


def test_protected_pages_send_to_login_and_check_roles(client, ctx, seeded):
    r = client.get("/feasibility", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/feasibility"
    login_as(client, ctx, seeded, "bio", Role.APPLICANT)
    for path in ("/reviews", "/steward", "/admin", "/audit"):
        r = client.get(path)
        assert r.status_code == 403 and "needs the role" in r.text, path
    assert client.get("/feasibility").status_code == 200


def test_a_form_post_without_its_token_changes_nothing(client, ctx, seeded):
    request_id = submitted_request(ctx, seeded)
    review_id = Requests(ctx).get(None, request_id).reviews[0].id
    login_as(client, ctx, seeded, "hopa", Role.REVIEWER)
    r = client.post(f"/reviews/{review_id}/decision", data={"status": "approved"})
    assert r.status_code == 403
    assert Requests(ctx).get(None, request_id).reviews[0].status == ReviewStatus.IN_REVIEW


def test_next_is_always_a_local_path():
    assert safe_next("/requests/3?x=1") == "/requests/3?x=1"
    for bad in ("//evil.example", "https://evil.example", "\\\\evil", "", None, "javascript:x"):
        assert safe_next(bad) == "/"


# -- the reviewer's clock and decision ----------------------------------------------------------


def test_the_queue_marks_near_due_and_overdue_reviews(client, ctx, seeded, clock):
    request_id = submitted_request(ctx, seeded)
    login_as(client, ctx, seeded, "hopa", Role.REVIEWER)
    assert 'class="c-on_time"' in client.get("/reviews").text
    clock.advance(days=55)
    login_as(client, ctx, seeded, "hopa", Role.REVIEWER)  # the earlier session has expired
    assert 'class="c-near_due"' in client.get("/reviews").text
    clock.advance(days=6)
    login_as(client, ctx, seeded, "hopa", Role.REVIEWER)
    page = client.get("/reviews").text
    assert 'class="c-overdue"' in page and "Overdue" in page
    review_id = Requests(ctx).get(None, request_id).reviews[0].id
    token = csrf(client)
    r = client.post(
        f"/reviews/{review_id}/decision",
        data={"csrf": token, "status": "approved_with_conditions", "conditions": ""},
    )
    assert r.status_code == 422 and "conditions are required" in r.text
    r = client.post(
        f"/reviews/{review_id}/decision",
        data={"csrf": token, "status": "approved_with_conditions", "conditions": "No export."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    out = Requests(ctx).get(None, request_id)
    assert out.status == RequestStatus.ACTIVE and out.reviews[0].conditions == "No export."


def test_the_applicant_saves_a_draft_then_submits(client, ctx, seeded):
    ds = Catalog(ctx).create(
        None,
        DatasetIn(title="B", description="d", domains=[Domain.DRUG], contact_email="a@b.fr"),
        seeded.orgs["hopb"],
    )
    login_as(client, ctx, seeded, "bio", Role.APPLICANT)
    token = csrf(client)
    form = {
        "csrf": token,
        "title": "Drug use",
        "purpose": ["research", "market_access"],
        "dataset_ids": str(ds.id),
        "duration_months": "12",
        "action": "save",
    }
    r = client.post("/requests/new", data={**form, "studies_text": "{not json"})
    assert r.status_code == 422 and "studies" in r.text
    r = client.post("/requests/new", data=form, follow_redirects=False)
    assert r.status_code == 303
    request_id = int(r.headers["location"].split("/")[2].split("?")[0])
    assert Requests(ctx).get(None, request_id).status == RequestStatus.DRAFT
    r = client.post(f"/requests/{request_id}/edit", data={**form, "action": "submit"})
    assert r.status_code == 422 and "gdpr_art6" in r.text  # a legal basis is needed to submit
    form.update(gdpr_art6="6.1.e", gdpr_art9="9.2.j", action="submit")
    r = client.post(f"/requests/{request_id}/edit", data=form, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/requests/{request_id}").text
    assert "Org hopb" in page and "In review" in page and f"request-{request_id}" in page


def test_extract_request_copies_the_project_as_a_draft(client, ctx, seeded):
    request_id = submitted_request(ctx, seeded)
    login_as(client, ctx, seeded, "bio", Role.APPLICANT)
    r = client.post(
        f"/projects/{request_id}/extract", data={"csrf": csrf(client)}, follow_redirects=False
    )
    assert r.status_code == 303
    new_id = int(r.headers["location"].split("/")[2])
    out = Requests(ctx).get(None, new_id)
    assert out.output_type == OutputType.PSEUDONYMIZED_EXTRACT and out.status == RequestStatus.DRAFT


# -- language ----------------------------------------------------------------------------------


def test_language_from_the_browser_and_the_switch(client):
    page = client.get("/observatory", headers={"accept-language": "fr-FR,fr;q=0.9,en;q=0.8"})
    assert '<html lang="fr">' in page.text and "Observatoire" in page.text
    assert '<html lang="en">' in client.get("/observatory", headers={"accept-language": "de"}).text
    r = client.get("/lang/fr?next=/catalogue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/catalogue"
    page = client.get("/catalogue", headers={"accept-language": "en"})
    assert '<html lang="fr">' in page.text  # the cookie wins over the browser
    assert (
        client.get("/lang/xx?next=//evil.example", follow_redirects=False).headers["location"]
        == "/"
    )


def test_pick_language():
    assert i18n.pick(None, "en-US,fr;q=0.9") == "en"
    assert i18n.pick(None, "de,fr;q=0.5,en;q=0.4") == "fr"
    assert i18n.pick("fr", "en") == "fr"
    assert i18n.pick("xx", None) == "en"


def _messages() -> set[str]:
    found: set[str] = set()
    for path in [*WEB.joinpath("templates").glob("*.html"), *WEB.joinpath("pages").glob("*.py")]:
        text = path.read_text()
        found.update(a or b for a, b in MESSAGE.findall(text))
        found.update(CALLED.findall(text))
    found.update(_table_titles())
    return found


def _table_titles() -> list[str]:
    from passerelle.observatory.stats import Observatory

    empty = Observatory(Filters(), 0, 0, "", None, {}, {}, {}, {}, [], [], [], [])  # type: ignore[arg-type]
    return [t.title for t in empty.tables().values()]


def test_every_message_has_a_french_translation():
    fr, en = i18n.catalogue("fr"), i18n.catalogue("en")
    messages = _messages()
    assert len(messages) > 200
    missing = sorted(m for m in messages if m not in fr and not m.endswith(":"))
    assert missing == []
    coded = {
        "org": OrgType,
        "purpose": Purpose,
        "status": RequestStatus,
        "review": ReviewStatus,
        "output": OutputType,
        "art6": GdprArt6,
        "art9": GdprArt9,
        "role": Role,
    }
    for prefix, enum in coded.items():
        for member in enum:
            key = f"{prefix}:{member.value}"
            assert key in fr and key in en, key
    for key in fr:
        if re.fullmatch(r"[a-z0-9]+:[A-Za-z0-9_.-]+", key) and key not in en:
            pytest.fail(f"{key} has no English label")
    # placeholders survive translation
    for key, text in fr.items():
        assert set(re.findall(r"{(\w+)}", key)) == set(re.findall(r"{(\w+)}", text)), key


def test_no_page_refers_to_another_site():
    pattern = re.compile(r"""(?:src|href|action)=["'](?:https?:)?//""", re.I)
    for path in WEB.joinpath("templates").glob("*.html"):
        assert not pattern.search(path.read_text()), path.name
    for path in WEB.joinpath("static").iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and (
            "https://" not in text
        ), path.name


# -- observatory ---------------------------------------------------------------------------------


def test_observatory_page_filters_and_csv(client, ctx, seeded):
    submitted_request(ctx, seeded)
    page = client.get("/observatory").text
    assert 'id="n-requests">1<' in page and "<svg" in page
    assert 'id="n-requests">0<' in client.get("/observatory?actor_type=pharma").text
    assert client.get("/observatory?actor_type=&purpose=&start=&end=").status_code == 200
    assert client.get("/observatory?actor_type=martian").status_code == 422
    r = client.get("/observatory/purposes.csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["actor_type,purpose,requests,share", "biotech,research,1,1.0"]
    assert client.get("/observatory/nothing.csv").status_code == 404


def test_node_names_are_slugs_of_organisation_names():
    assert slug("CHU Nord") == "chu-nord"
    assert slug("Hôpital Saint-Étienne (AP)") == "hopital-saint-etienne-ap"


# -- accessibility basics -------------------------------------------------------------------------


class _Fields(HTMLParser):
    """Form fields, labels, images and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.svgs: int = 0
        self.titles: int = 0
        self.h1: int = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.fields.append(a)
        elif tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")
        elif tag == "svg" and a.get("role") == "img":
            self.svgs += 1
        elif tag == "title":
            self.titles += 1
        elif tag == "h1":
            self.h1 += 1


def test_every_field_has_a_label_and_every_chart_a_title(client, ctx, seeded):
    request_id = submitted_request(ctx, seeded)
    pages = {
        None: ["/", "/catalogue", "/catalogue/1", "/observatory", "/login"],
        ("bio", Role.APPLICANT): [
            "/feasibility",
            "/requests",
            "/requests/new",
            f"/requests/{request_id}",
            f"/projects/{request_id}",
        ],
        ("hopa", Role.REVIEWER): [
            "/reviews",
            f"/reviews/{Requests(ctx).get(None, request_id).reviews[0].id}",
        ],
        ("hopa", Role.STEWARD): ["/steward"],
        ("hopa", Role.ADMIN): ["/admin"],
        ("hopa", Role.AUDITOR): ["/audit"],
    }
    for who, paths in pages.items():
        client.cookies.clear()
        if who is not None:
            login_as(client, ctx, seeded, *who)
        for path in paths:
            r = client.get(path)
            assert r.status_code == 200, path
            parsed = _Fields()
            parsed.feed(r.text)
            unlabelled = [f for f in parsed.fields if f.get("id") not in parsed.labels]
            assert unlabelled == [], (path, unlabelled)
            assert parsed.h1 == 1, path
            assert parsed.titles >= 1 + parsed.svgs, path  # the page's and each chart's


def test_a_hub_that_does_not_answer_is_a_clear_error_page(settings, clock, seeded, ctx):
    import socket

    from fastapi.testclient import TestClient

    from passerelle.web import create_app

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(
        settings.model_copy(update={"hub_url": f"http://127.0.0.1:{port}"}), clock=clock
    )
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            login_as(client, ctx, seeded, "bio", Role.APPLICANT)
            token = csrf(client)
            r = client.post(
                "/feasibility",
                data={"csrf": token, "entry_domain": "condition", "entry_concepts": "192671"},
            )
            assert r.status_code == 502 and "federation hub did not answer" in r.text
            r = client.post("/feasibility", data={"csrf": token, "entry_domain": "condition"})
            assert r.status_code == 200 and "Choose at least one entry concept." in r.text
    finally:
        app.state.services.ctx.db.dispose()
