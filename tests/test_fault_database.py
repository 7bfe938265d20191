"""With PostgreSQL down, the portal answers 503 with Retry-After, one log line per request and
no traceback; once PostgreSQL is back, the same server process serves again.

The portal runs under gunicorn (one worker process) against a PostgreSQL cluster of this
test's own, which it stops and starts: a device enrolls for real (profile download, SCEP,
Authenticate and TokenUpdate signed with its new identity), then with the database stopped a
signed device request, SCEP GetCACert and PKIOperation, and an enrollment profile download
are refused with 503; GetCACaps needs no database and still answers.
"""

import plistlib

import httpx
import pytest

from certs.cms import signed_content
from simulator import scep as scep_client
from tests.apns_fixtures import shared_pki
from tests.fault_support import Portal, PostgresCluster, pg_binaries
from tests.simulator import Response, SimulatedDevice

pytestmark = pytest.mark.postgres


@pytest.fixture
def portal(tmp_path):
    if pg_binaries() is None:
        pytest.fail("PostgreSQL's binaries (initdb, pg_ctl) are missing: scripts/services.sh")
    cluster = PostgresCluster(tmp_path / "pg").init()
    server = Portal(tmp_path, {"DATABASE_URL": cluster.url})
    try:
        server.manage("migrate", "-v", "0")
        server.manage("mdm_init")
        certificate_pem, key_pem = shared_pki().issue_push_certificate()
        (tmp_path / "push.pem").write_bytes(certificate_pem)
        (tmp_path / "push-key.pem").write_bytes(key_pem)
        push = ["--cert", str(tmp_path / "push.pem"), "--key", str(tmp_path / "push-key.pem")]
        server.manage("mdm_pushcert", "import", *push)
        out = server.manage("mdm_enrollment", "create", "--name", "Phones")
        link = next(word for word in out.split() if "/enroll/" in word)
        server.token = link.rstrip("/").rsplit("/", 1)[-1]
        server.cluster = cluster
        server.start()
        yield server
    finally:
        server.stop()
        cluster.stop()


def profile_payloads(http: httpx.Client, token: str) -> dict:
    download = http.get(f"/enroll/{token}/profile")
    assert download.status_code == 200, download.text
    profile = plistlib.loads(signed_content(download.content))
    return {p["PayloadType"]: p for p in profile["PayloadContent"]}


def pkcs_req(http: httpx.Client, scep: dict) -> bytes:
    """A device's PKIOperation body for the payload's challenge (not sent yet)."""
    cacert = http.get("/scep", params={"operation": "GetCACert", "message": scep["Name"]})
    _ca, recipient = scep_client.split_ca_certs(cacert.content, cacert.headers["content-type"])
    key = scep_client.make_key()
    common_name = dict(item[0] for item in scep["Subject"])["CN"]
    csr = scep_client.make_scep_csr(key, common_name, scep["Challenge"])
    return scep_client.build_pkcs_req(csr, scep_client.signer_for(key, csr), key, recipient)


def enrolled_device(http: httpx.Client, payloads: dict) -> SimulatedDevice:
    def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
        answer = http.put(path, content=body, headers=headers)
        return Response(answer.status_code, answer.content)

    scep = payloads["com.apple.security.scep"]["PayloadContent"]
    certificate, key = scep_client.enroll_with_payload(*scep_client.over_httpx(http), scep)
    topic = payloads["com.apple.mdm"]["Topic"]
    sim = SimulatedDevice(send=send, certificate=certificate, key=key, topic=topic)
    sim.enroll()
    return sim


def test_postgres_down_answers_503_and_the_same_process_recovers(portal):
    http = httpx.Client(base_url=portal.url, timeout=30)
    sim = enrolled_device(http, profile_payloads(http, portal.token))
    # A second device's SCEP request, made while the database is up, sent while it is down.
    scep = profile_payloads(http, portal.token)["com.apple.security.scep"]["PayloadContent"]
    pki_message = pkcs_req(http, scep)
    pid = portal.process.pid

    requests = {
        "device": lambda: sim.idle(),
        "GetCACert": lambda: http.get("/scep", params={"operation": "GetCACert"}),
        "PKIOperation": lambda: http.post(
            "/scep", params={"operation": "PKIOperation"}, content=pki_message
        ),
        "profile": lambda: http.get(f"/enroll/{portal.token}/profile"),
    }

    portal.cluster.stop()
    log_before = len(portal.log_text())
    for name, send in requests.items():
        answer = send()
        status = answer.status if isinstance(answer, Response) else answer.status_code
        assert status == 503, (name, status)
        if not isinstance(answer, Response):
            assert answer.headers["retry-after"].isdigit(), name
            assert answer.headers["content-type"].startswith("text/plain"), name
    # SCEP's capabilities are constants: no database needed, still served.
    assert http.get("/scep", params={"operation": "GetCACaps"}).status_code == 200
    log = portal.log_text()[log_before:]
    assert "Traceback" not in log, log
    refused = [line for line in log.splitlines() if "503" in line]
    assert len(refused) == len(requests), log
    assert len(log.splitlines()) == len(requests), log  # nothing else either

    portal.cluster.start()
    assert sim.idle().status == 200
    assert requests["GetCACert"]().status_code == 200
    # The refused PKIOperation changed nothing: its one-time challenge still works.
    assert requests["PKIOperation"]().status_code == 200
    assert requests["profile"]().status_code == 200
    assert portal.process.pid == pid and portal.alive()  # no restart
