import pytest

from tests.fixtures.appdb import RecordingMailer


@pytest.fixture
def app(settings, clock):
    from passerelle.web import create_app

    application = create_app(settings, clock=clock, mailer=RecordingMailer())
    yield application
    application.state.services.ctx.db.dispose()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def web_ctx(app):
    return app.state.services.ctx
