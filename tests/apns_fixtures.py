"""The `apns` fixture: a running APNs stand-in the portal is pointed at, with a push certificate.

    from tests.apns_fixtures import apns  # noqa: F401

    def test_something(apns):
        push_devices([...], "manual")
        assert apns.requests[0].path == ...

ruff reports F811 when a test's `apns` parameter shadows that import; importing
`apns_fixture` instead (the same fixture, registered under the name `apns`) avoids it:

    from tests.apns_fixtures import apns_fixture  # noqa: F401

Each test gets a fresh stand-in (its own port, records and answers); the test PKI (a CA and
the server's certificate) is made once per test session. `apns.push_certificate` is the active
PushCertificate, signed by the CA the stand-in trusts.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.apns_standin import APNsStandIn, StandInPKI, install_push_certificate

_pki: StandInPKI | None = None


def shared_pki() -> StandInPKI:
    """The session's test PKI (EC keys: cheap, but made once all the same)."""
    global _pki
    if _pki is None:
        folder = Path(tempfile.mkdtemp(prefix="apns-standin-"))
        _pki = StandInPKI.create(folder)
        import atexit

        atexit.register(shutil.rmtree, folder, True)
    return _pki


@pytest.fixture(name="apns")
def apns_fixture(db, settings, tmp_path):
    pki = shared_pki()
    with APNsStandIn(tmp_path, pki=pki) as standin:
        settings.MDM_APNS_URL = standin.url
        settings.MDM_APNS_CA_FILE = str(standin.ca_file)
        standin.push_certificate = install_push_certificate(pki)
        yield standin


apns = apns_fixture
