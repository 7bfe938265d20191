import glob
import os
import shutil

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from certs.ca import ensure_ca, issue_certificate
from devices.identities import bind
from tests.acme_support import acme, apple_device, attestation_ca  # noqa: F401 - ACME fixtures
from tests.api_support import api  # noqa: F401 - a fixture: a token client per role
from tests.dep_enroll_support import device_ca, setup_dep  # noqa: F401 - Setup Assistant
from tests.dep_support import dep, dep_server  # noqa: F401 - Apple's DEP API stand-in, a server
from tests.simulator import SimulatedDevice, client_sender, make_csr, make_key
from tests.simulator_support import portal  # noqa: F401 - a fixture: a live portal to enroll in
from tests.ui_support import staff  # noqa: F401 - a fixture: a client per role

IN_CI = os.environ.get("CI", "").lower() == "true"


def production_unavailable() -> str:
    """Why scripts/serve.sh cannot run the production stack here ("" when it can): as root it
    installs what is missing; otherwise nginx, PostgreSQL and Redis must be installed."""
    if not os.path.exists("/proc/self/stat"):
        return "needs Linux (/proc)"
    if os.geteuid() == 0:
        return ""
    tools = {
        "nginx": shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"),
        "PostgreSQL": shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        "Redis": shutil.which("redis-server"),
        "setsid/flock (util-linux)": shutil.which("setsid") and shutil.which("flock"),
    }
    missing = [name for name, found in tools.items() if not found]
    if missing:
        return f"needs {', '.join(missing)} (or root, to install them) for scripts/serve.sh"
    return ""


def pytest_runtest_setup(item):
    """PostgreSQL, Redis and production tests run for real; under CI=true they may never be
    skipped."""
    if item.get_closest_marker("postgres") and not settings.DATABASES["default"]["ENGINE"].endswith(
        "postgresql"
    ):
        reason = "needs PostgreSQL: run scripts/services.sh and set DATABASE_URL"
        if IN_CI:
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        reason = "needs Redis: run scripts/services.sh and set REDIS_URL"
        if IN_CI:
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)
    if item.get_closest_marker("production") and (reason := production_unavailable()):
        if IN_CI:
            pytest.fail("CI=true but the production test " + reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def apple_is_never_reached(settings):
    """No test reaches Apple's DEP API: a test that does not start the stand-in (the `dep`
    fixture) and still asks Apple gets a refused connection, not mdmenrollment.apple.com."""
    settings.MDM_DEP_URL = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Staff users are made in many tests: a slow (secure) hasher would cost ~1.7 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ca(db):
    authority, _ = ensure_ca(actor="tests")
    return authority


@pytest.fixture
def send(client: Client):
    """Send a device request through Django's full request handling."""
    return client_sender(client)


def new_identity(common_name: str = "device", kind: str = "rsa", device=None):
    key = make_key(kind)
    certificate, record = issue_certificate(make_csr(key, common_name))
    if device is not None:
        bind(record, device)
    return certificate, key, record


@pytest.fixture
def make_device(ca, send):
    def _make(**kwargs) -> SimulatedDevice:
        key_kind = kwargs.pop("key_kind", "rsa")
        certificate, key, _ = new_identity(kind=key_kind)
        return SimulatedDevice(send=send, certificate=certificate, key=key, **kwargs)

    return _make


@pytest.fixture
def device(make_device) -> SimulatedDevice:
    return make_device()


@pytest.fixture
def enrolled(device) -> SimulatedDevice:
    device.enroll()
    return device


@pytest.fixture
def vendor() -> str:
    return connection.vendor


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-background-networking",  # this machine has no network beyond loopback
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium driven by Playwright. Under CI=true a missing browser fails."""
    import shutil

    if not shutil.which(CHROMIUM):
        reason = "needs Debian's chromium: run scripts/test-tools.sh"
        if IN_CI:
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in the test thread for the rest of the
    # session, which Django takes for an async context: every later ORM call (the tests' own,
    # the database setup and flushes) is plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


ARTIFACTS = settings.BASE_DIR / "var" / "test-artifacts"


@pytest.fixture
def browser_page(chromium, live_server):
    """A fresh page (laptop size) against the live test server; screenshots go to ARTIFACTS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(
        viewport={"width": 1366, "height": 900}, base_url=live_server.url
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def http_device(live_server, ca):
    """Simulated devices that speak to the live server over HTTP, signed with Mdm-Signature."""
    import httpx

    from tests.simulator import Response

    client = httpx.Client(base_url=live_server.url, timeout=10)

    def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
        answer = client.put(path, content=body, headers=headers)
        return Response(answer.status_code, answer.content)

    def make_sim(**fields) -> SimulatedDevice:
        certificate, key, _ = new_identity()
        return SimulatedDevice(send=send, certificate=certificate, key=key, **fields)

    yield make_sim
    client.close()
