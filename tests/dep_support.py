"""Fixtures for the DEP tests: a running stand-in of Apple's DEP API (tests/dep_standin.py) that
MDM_DEP_URL points at, and DEP servers holding its OAuth credentials.

tests/conftest.py registers the fixtures `dep` and `dep_server`.
Retry waits are recorded in `dep.waits` instead of being slept.
"""

import pytest

from enrollment.dep_models import DepServer
from enrollment.dep_tokens import create_server, import_token
from tests.dep_standin import DepStandIn
from tests.dep_tokens_support import make_server_token


def make_server(standin: DepStandIn | None, name: str = "ABM", **credentials: str) -> DepServer:
    """A DEP server with its key, and a server token (made as ABM makes it, then imported)
    holding the stand-in's credentials, or those given instead (None: no token imported)."""
    server = create_server(name, actor="tests")
    if standin is None:
        return server
    token = make_server_token(server.key.certificate_pem, **{**standin.credentials, **credentials})
    return import_token(server, token, actor="tests")


@pytest.fixture
def dep(settings, monkeypatch):
    """A running stand-in; MDM_DEP_URL points at it and retry waits land in `dep.waits`."""
    import enrollment.dep_client

    standin = DepStandIn().start()
    settings.MDM_DEP_URL = standin.url
    settings.MDM_DEP_RETRIES = 2
    standin.waits = []
    monkeypatch.setattr(enrollment.dep_client, "sleep", standin.waits.append)
    yield standin
    standin.stop()


@pytest.fixture
def dep_server(db, dep) -> DepServer:
    return make_server(dep)
