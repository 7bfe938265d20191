"""The production stack for real: `scripts/serve.sh start` brings up PostgreSQL and Redis
(durable), nginx (TLS, optional client certificates), gunicorn, a Celery worker and beat. A
simulated device downloads its enrollment profile over HTTPS, gets its identity by SCEP through
nginx, checks in with that identity as its TLS client certificate and no Mdm-Signature, is
woken by the worker through an APNs stand-in and runs a command. Through nginx, a client that
sends the certificate header itself, a self-signed certificate and another device's certificate
get 403 and change nothing, oversized bodies 413. A second start is harmless; stop leaves no
process behind.

The stack runs in a folder of its own, on free ports, with a clean environment, so it collides
neither with the test services (scripts/services.sh) nor with a developer's running stack.
"""

import json
import os
import plistlib
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from django.conf import settings

from certs.cms import signed_content
from simulator import scep as scep_client
from simulator.attestation import AttestationCA
from tests.apns_fixtures import shared_pki
from tests.apns_standin import APNsStandIn
from tests.production_support import (
    ROOT,
    SERVE_USER,
    Stack,
    clean_environment,
    free_port,
    pem,
    readable_by_others,
)
from tests.simulator import CHECKIN_CT, escaped_pem, make_key, rfc9440

pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def stack():
    folder = Path(tempfile.mkdtemp(prefix="mdm-serve-test-"))
    folder.chmod(0o755)  # the service user and postgres traverse it
    repo = ROOT
    if not readable_by_others(ROOT) or not readable_by_others(ROOT / "scripts"):
        # E.g. a clone under /root: the service user could not read it. A copy it can read.
        repo = folder / "repo"
        shutil.copytree(
            ROOT, repo, ignore=shutil.ignore_patterns(".git", ".venv", "var", "__pycache__")
        )
    # Where .venv's Python is not the service user's to run (pyenv under /root), serve.sh
    # makes the service a venv of its own: kept in the repository's var/ from run to run.
    venv_cache = repo / "var" / "serve-test-venv"
    venv_cache.parent.mkdir(exist_ok=True)
    if not readable_by_others(venv_cache.parent):
        venv_cache = folder / "venv"
    apns = APNsStandIn(folder / "apns", pki=shared_pki()).start()
    apns_ca = folder / "apns-ca.pem"  # the worker, running as the service user, reads it
    shutil.copyfile(apns.ca_file, apns_ca)
    apns_ca.chmod(0o644)
    # Apple's part in ACME device attestation, played by a test CA whose root the stack trusts.
    AttestationCA.create().save(folder / "attestation")
    (folder / "attestation").chmod(0o755)
    port = free_port()
    env = clean_environment(
        MDM_SERVE_DIR=str(folder / "production"),
        MDM_HTTPS_PORT=str(port),
        MDM_SERVE_PG_PORT=str(free_port()),
        MDM_SERVE_REDIS_PORT=str(free_port()),
        MDM_PUBLIC_URL=f"https://127.0.0.1:{port}",
        MDM_WEB_WORKERS="2",
        MDM_CELERY_WORKERS="1",
        MDM_APNS_URL=apns.url,
        MDM_APNS_CA_FILE=str(apns_ca),
        MDM_PUSH_COALESCE_SECONDS="1",
        MDM_SERVE_VENV=str(venv_cache),
        MDM_ACME_ATTESTATION_ROOTS=str(folder / "attestation" / "root.pem"),
    )
    stack = Stack(repo=repo, folder=folder, port=port, env=env, apns=apns)
    started = time.monotonic()
    try:
        result = stack.serve("start")
        print(f"serve.sh start took {time.monotonic() - started:.1f}s")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Portal:            https://127.0.0.1:{port}/" in result.stdout
        assert "Admin login:       admin / " in result.stdout
        exports = stack.serve("env")
        assert exports.returncode == 0, exports.stderr
        for line in exports.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            stack.exports[name] = shlex.split(value)[0] if value else ""
        yield stack
    finally:
        stopping = time.monotonic()
        stopped = stack.serve("stop", timeout=300)
        print(stopped.stdout, stopped.stderr, f"stop took {time.monotonic() - stopping:.1f}s")
        apns.stop()
        shutil.rmtree(folder, ignore_errors=True)


def pids_of_stack(stack: Stack) -> set[int]:
    """Every live process of the stack: each component's session (master and workers) and
    PostgreSQL's and Redis's processes, found from the pid files and /proc."""
    production = Path(stack.env["MDM_SERVE_DIR"])
    sessions, roots = set(), set()
    for pid_file in (production / "run").glob("*.pid"):
        if pid_file.name in ("nginx.pid", "gunicorn.pid", "worker.pid", "beat.pid"):
            sessions.add(int(pid_file.read_text().split()[0]))
    for pid_file in (
        production / "services/pg/postmaster.pid",
        production / "services/redis/redis.pid",
    ):
        if pid_file.exists():
            roots.add(int(pid_file.read_text().split()[0]))
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid, session = fields[0], int(fields[1]), int(fields[3])
        if state == "Z":
            continue  # exited, waiting to be reaped by init
        pid = int(proc.name)
        if session in sessions or pid in roots or ppid in roots or str(production) in cmdline:
            found.add(pid)
    return found


def owner(pid: int) -> str:
    import pwd

    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


# -- the stack -------------------------------------------------------------------------------


def test_durable_services_and_an_unprivileged_service_user(stack):
    import psycopg
    import redis

    with psycopg.connect(stack.exports["DATABASE_URL"]) as connection:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert connection.execute(f"SHOW {name}").fetchone()[0] == "on"
    broker = redis.Redis.from_url(stack.exports["REDIS_URL"])
    assert broker.config_get("appendonly") == {"appendonly": "yes"}
    assert broker.config_get("appendfsync") == {"appendfsync": "always"}
    broker.close()

    production = Path(stack.env["MDM_SERVE_DIR"])
    key = production / "tls/key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:
        assert key.owner() == SERVE_USER
        for name in ("gunicorn", "worker", "beat"):
            pid = int((production / f"run/{name}.pid").read_text().split()[0])
            assert owner(pid) == SERVE_USER, name
        for folder in ("data", "tls"):
            assert oct((production / folder).stat().st_mode & 0o777) == "0o700"


# -- a device enrolls over HTTPS and runs a command ------------------------------------------


def download_profile(stack: Stack, token: str) -> dict:
    """What a person does in Safari: open the link (accepting the private certificate the
    first time) and download the profile; the profile then gives the device the TLS CA."""
    with stack.client(verify=False) as browser:
        page = browser.get(f"/enroll/{token}/")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        download = browser.get(f"/enroll/{token}/profile")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-apple-aspen-config"
    return plistlib.loads(signed_content(download.content))


def scep_enroll(stack: Stack, scep: dict):
    assert scep["URL"] == f"{stack.url}/scep"
    with stack.client() as http:
        return scep_client.enroll_with_payload(*scep_client.over_httpx(http), scep)


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def device_json(stack: Stack, udid: str) -> dict:
    return json.loads(stack.manage("mdm_device", udid))


@pytest.fixture(scope="module")
def enrollment(stack):
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    (stack.folder / "push.pem").write_bytes(certificate_pem)
    (stack.folder / "push-key.pem").write_bytes(key_pem)
    stack.manage(
        "mdm_pushcert",
        "import",
        "--cert",
        str(stack.folder / "push.pem"),
        "--key",
        str(stack.folder / "push-key.pem"),
    )
    out = stack.manage("mdm_enrollment", "create", "--name", "Phones")
    link = next(word for word in out.split() if "/enroll/" in word)
    assert link.startswith(f"{stack.url}/enroll/")
    token = link.rstrip("/").rsplit("/", 1)[-1]
    profile = download_profile(stack, token)
    payloads = profile["PayloadContent"]
    roots = [p for p in payloads if p["PayloadType"] == "com.apple.security.root"]
    assert len(roots) == 2  # the device-identity CA and the server-TLS CA
    tls_ca = x509.load_der_x509_certificate(roots[1]["PayloadContent"])
    stack.trust_pem = pem(tls_ca).decode()
    (stack.folder / "trust.pem").write_text(stack.trust_pem)  # for clients such as mdm_simulate
    return token, profile


@pytest.fixture(scope="module")
def device(stack, enrollment):
    _token, profile = enrollment
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    mdm = payloads["com.apple.mdm"]
    assert mdm["SignMessage"] is False  # the TLS client certificate identifies the device
    assert mdm["ServerURL"] == f"{stack.url}/mdm/connect"
    certificate, key = scep_enroll(stack, payloads["com.apple.security.scep"]["PayloadContent"])
    sim = stack.device(certificate, key, topic=mdm["Topic"])
    sim.enroll()
    return sim


def test_a_device_enrolls_over_https_with_its_tls_client_certificate(stack, device):
    state = device_json(stack, device.udid)
    assert state["state"] == "enrolled"
    # The worker pushed it (the first TokenUpdate queued the initial inventory).
    wait_for(lambda: stack.apns.requests, "the worker's push to the APNs stand-in")
    push = stack.apns.requests[0]
    assert push.path == f"/3/device/{device.token.hex()}"
    assert json.loads(push.body) == {"mdm": device.push_magic}

    # The command loop: what was queued, then a command queued with mdm_enqueue.
    queued = stack.manage(
        "mdm_enqueue",
        device.udid,
        "DeviceInformation",
        "--json",
        json.dumps({"Queries": ["DeviceName"]}),
    )
    command_uuid = queued.split()[-1]
    answer = device.idle()
    for _ in range(20):
        assert answer.status == 200, answer.body
        command = answer.plist()
        if command["CommandUUID"] == command_uuid:
            break
        answer = device.report(command["CommandUUID"])
    else:
        pytest.fail("the queued command never came")
    done = device.report(command_uuid, QueryResponses={"DeviceName": "Over TLS"})
    assert (done.status, done.body) == (200, b"")
    assert device_json(stack, device.udid)["name"] == "Over TLS"


def test_the_fleet_simulator_enrolls_and_answers_with_tls_client_certificates(stack, enrollment):
    """mdm_simulate, a client of the running stack: profile, SCEP, check-in and the command
    loop over HTTPS through nginx, each device proving itself by its TLS client certificate
    (the enrollment signs nothing: SignMessage is off)."""
    token, _profile = enrollment
    trust = stack.folder / "trust.pem"
    summary_file = stack.folder / "simulator.json"
    stack.manage(
        "mdm_simulate",
        "--url",
        stack.url,
        "--enrollment",
        token,
        "--devices",
        "3",
        "--concurrency",
        "3",
        "--client-cert",
        "--ca-file",
        str(trust),
        "--no-progress",
        "--json",
        str(summary_file),
    )
    summary = json.loads(summary_file.read_text())
    assert (summary["enrolled"], summary["enroll_failed"], summary["errors"]) == (3, 0, {})
    answered = sum(sum(by_status.values()) for by_status in summary["commands"].values())
    assert answered >= 3 * 5  # the initial inventory of each
    rows = [json.loads(line) for line in stack.manage("mdm_device", "--list").splitlines()]
    simulated = [row for row in rows if row["device_name"].startswith("Simulated ")]
    assert len(simulated) == 3 and {row["state"] for row in simulated} == {"enrolled"}


def test_the_fleet_simulator_enrolls_by_acme_with_attestation_through_nginx(stack, enrollment):
    """ACME behind the TLS proxy: the directory's URLs are the ones devices see (https, the
    proxy's port), device-attest-01 is checked against the root the stack trusts, and the
    ACME identity then serves as the TLS client certificate in the command loop."""
    out = stack.manage("mdm_enrollment", "create", "--name", "Attested", "--identity", "acme")
    token = next(w for w in out.split() if "/enroll/" in w).rstrip("/").rsplit("/", 1)[-1]
    summary_file = stack.folder / "simulator-acme.json"
    stack.manage(
        "mdm_simulate", "--url", stack.url, "--enrollment", token, "--devices", "2",
        "--concurrency", "2", "--client-cert", "--ca-file", str(stack.folder / "trust.pem"),
        "--attestation-ca", str(stack.folder / "attestation"), "--no-progress",
        "--json", str(summary_file),
    )  # fmt: skip
    summary = json.loads(summary_file.read_text())
    assert (summary["enrolled"], summary["enroll_failed"], summary["errors"]) == (2, 0, {})
    assert sum(summary["commands"].get("DeviceInformation", {}).values()) >= 2
    attested = stack.manage(
        "shell", "-c", "from certs.models import IssuedCertificate as C; "
        "print(C.objects.filter(delivery='acme').exclude(attested_udid='').count())",
    )  # fmt: skip
    assert attested.split()[-1] == "2"  # after shell's note of what it imported


def test_declarative_management_over_https_with_the_tls_client_certificate(stack, device):
    """A declaration set given with mdm_declaration reaches the device through nginx: the
    DeclarativeManagement check-in and the asset's data, which only the device's TLS client
    certificate opens (the header nginx sets is the only identity it takes)."""
    notes = stack.folder / "notes.txt"
    notes.write_bytes(b"served through nginx")
    stack.manage(
        "mdm_declaration", "add-data", "prod-notes", str(notes), "--content-type", "text/plain"
    )
    declarations = stack.folder / "declarations.json"
    declarations.write_text(json.dumps([
        {"Type": "com.apple.management.organization-info", "Identifier": "prod-org",
         "Payload": {"Name": "Production"}},
    ]))  # fmt: skip
    stack.manage("mdm_declaration", "add", str(declarations), "--set", "Production")
    stack.manage("mdm_declaration", "set", "add", "Production", "prod-notes")
    out = stack.manage("mdm_declaration", "assign", "Production", "--device", device.udid)
    assert "DeclarativeManagement queued for 1 device(s)" in out
    answer = device.checkin("DeclarativeManagement", Endpoint="declaration-items")
    assert answer.status == 200, answer.body
    items = json.loads(answer.body)["Declarations"]
    assert [item["Identifier"] for item in items["Management"]] == ["prod-org"]
    assert [item["Identifier"] for item in items["Assets"]] == ["prod-notes"]
    asset = device.checkin("DeclarativeManagement", Endpoint="declaration/asset/prod-notes")
    data_url = json.loads(asset.body)["Payload"]["Reference"]["DataURL"]
    assert data_url.startswith(f"{stack.url}/mdm/assets/")
    with stack.client(device.certificate, device.key) as http:
        assert http.get(data_url).content == b"served through nginx"
    with stack.client() as http:
        assert http.get(data_url).status_code == 403  # no certificate
        forged = {"X-Ssl-Client-Cert": escaped_pem(device.certificate)}
        assert http.get(data_url, headers=forged).status_code == 403  # nginx overwrites it


# -- refusals through nginx ----------------------------------------------------------------


def test_a_client_sending_the_certificate_header_itself_gets_403(stack, device):
    before = device_json(stack, device.udid)
    forged = {
        "X-Ssl-Client-Cert": escaped_pem(device.certificate),
        "x-ssl-client-cert": escaped_pem(device.certificate),
        "Client-Cert": rfc9440(device.certificate),
        "X-Forwarded-Client-Cert": escaped_pem(device.certificate),
    }
    with stack.client() as http:  # no TLS client certificate
        for name, value in forged.items():
            for message, path in (
                (
                    {"MessageType": "Authenticate", "UDID": "SPOOFED-" + name, "Topic": "x"},
                    "/mdm/checkin",
                ),
                (
                    {
                        "MessageType": "TokenUpdate",
                        "UDID": device.udid,
                        "Topic": device.topic,
                        "Token": b"forged-token",
                        "PushMagic": "FORGED",
                    },
                    "/mdm/checkin",
                ),
                ({"UDID": device.udid, "Status": "Idle"}, "/mdm/connect"),
            ):
                headers = {"Content-Type": CHECKIN_CT, name: value}
                answer = http.put(path, content=plistlib.dumps(message), headers=headers)
                assert answer.status_code == 403, (name, path, answer.text)
        # A header name with underscores never passes either (nginx drops it).
        answer = http.put(
            "/mdm/connect",
            content=plistlib.dumps({"UDID": device.udid, "Status": "Idle"}),
            headers={"X_Ssl_Client_Cert": quote(pem(device.certificate).decode(), safe="")},
        )
        assert answer.status_code == 403
    after = device_json(stack, device.udid)
    assert after == before
    devices = stack.manage("mdm_device", "--list")
    assert "SPOOFED" not in devices


def test_self_signed_and_other_devices_certificates_get_403(stack, enrollment, device):
    # A certificate our CA never issued: the handshake succeeds, the portal refuses.
    key = make_key()
    stranger = scep_client.self_signed(key, device.certificate.subject)
    intruder = stack.device(stranger, key, udid=device.udid)
    assert intruder.idle().status == 403
    assert stack.device(stranger, key).authenticate().status == 403

    # Another device's identity, for this device's UDID.
    token, _profile = enrollment
    other_profile = download_profile(stack, token)
    scep = next(
        p for p in other_profile["PayloadContent"] if p["PayloadType"] == "com.apple.security.scep"
    )
    certificate, other_key = scep_enroll(stack, scep["PayloadContent"])
    other = stack.device(certificate, other_key, topic=device.topic)
    other.enroll()
    before = device_json(stack, device.udid)
    impostor = stack.device(certificate, other_key, udid=device.udid, topic=device.topic)
    assert impostor.idle().status == 403
    assert impostor.token_update().status == 403
    assert device_json(stack, device.udid) == before
    assert device.idle().status == 200  # the device itself still gets through


def test_oversized_bodies_get_413(stack, device):
    # The stack runs on the default limits, which are this process's settings too.
    limits = {
        "/mdm/checkin": settings.MDM_CHECKIN_MAX_BYTES,
        "/mdm/connect": settings.MDM_CONNECT_MAX_BYTES,
        "/scep": 64 * 1024,
    }
    with stack.client(device.certificate, device.key) as http:
        for path, limit in limits.items():
            params = {"operation": "PKIOperation"} if path == "/scep" else None
            method = "POST" if path == "/scep" else "PUT"
            answer = http.request(method, path, params=params, content=b"\0" * (limit + 1))
            assert answer.status_code == 413, path
        # At the limit the portal gets it (and refuses the nonsense body as such).
        answer = http.put("/mdm/checkin", content=b"\0" * limits["/mdm/checkin"])
        assert answer.status_code == 400


# -- start twice, stop -----------------------------------------------------------------------


def component_pids(stack: Stack) -> dict[str, str]:
    run = Path(stack.env["MDM_SERVE_DIR"]) / "run"
    return {
        name: (run / f"{name}.pid").read_text() for name in ("nginx", "gunicorn", "worker", "beat")
    }


def test_starting_twice_is_harmless(stack, device):
    before = component_pids(stack)
    again = stack.serve("start")
    assert again.returncode == 0, again.stderr
    assert "already runs: keeping its settings" in again.stderr
    assert component_pids(stack) == before
    assert stack.serve("status").returncode == 0
    assert device.idle().status == 200


def test_stopping_one_side_leaves_the_rest_running(stack, device):
    import psycopg

    before = component_pids(stack)
    stopped = stack.serve("stop", "--web-only")
    assert stopped.returncode == 0, stopped.stderr
    assert "the rest of the stack runs" in stopped.stderr
    run = Path(stack.env["MDM_SERVE_DIR"]) / "run"
    assert not (run / "nginx.pid").exists() and not (run / "gunicorn.pid").exists()
    assert {n: (run / f"{n}.pid").read_text() for n in ("worker", "beat")} == {
        n: before[n] for n in ("worker", "beat")
    }
    with psycopg.connect(stack.exports["DATABASE_URL"]) as connection:  # the services run
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert stack.serve("start").returncode == 0  # brings back what is stopped
    after = component_pids(stack)
    assert after["worker"] == before["worker"] and after["nginx"] != before["nginx"]
    assert device.idle().status == 200

    assert stack.serve("stop", "--workers-only").returncode == 0
    assert not (run / "worker.pid").exists() and not (run / "beat.pid").exists()
    assert device.idle().status == 200  # the web side still answers
    assert stack.serve("start").returncode == 0
    assert component_pids(stack)["nginx"] == after["nginx"]
    assert stack.serve("status").returncode == 0


def test_stop_leaves_no_process_behind(stack):
    running = pids_of_stack(stack)
    assert len(running) >= 10  # nginx, gunicorn and Celery masters and workers, PostgreSQL, Redis
    stopped = stack.serve("stop", timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    assert pids_of_stack(stack) == set()
    left = [pid for pid in running if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]
    assert left == []
    run = Path(stack.env["MDM_SERVE_DIR"]) / "run"
    assert sorted(p.name for p in run.iterdir() if p.suffix in (".pid", ".sock")) == []
    assert stack.serve("status").returncode != 0


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
