"""The SCEP server against real clients this project did not write, over HTTP (live server).

- certmonger (Debian package `certmonger`): its daemon runs in the foreground with a private
  listening socket instead of D-Bus (`certmonger -n -L -P SOCKET`), every state directory in the
  test's tmp_path (the CERTMONGER_*_DIR variables); `getcert` talks to it through
  CERTMONGER_PVT_ADDRESS. Its SCEP helper `scep-submit` is also run directly. It uses GET
  PKIOperation, AES-256 and SHA-256.
- micromdm's `scepclient` (Debian package `scep`): it encrypts with single DES and signs with
  SHA-1, so the server refuses it with badAlg and issues nothing.

Install both with scripts/test-tools.sh. A missing binary skips these tests, or fails them
under CI=true.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.ca import ca_certificate, ensure_ca, sha256_hex
from certs.challenges import issue_challenge
from certs.models import CertificateAuthority, IssuedCertificate, ScepChallenge, ScepRequest
from certs.scep_ra import ra_credentials
from enrollment.links import enrollment_of, issue_enrollment_challenge
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)

IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT = 90  # seconds for one client command


def need(candidates: tuple[str, ...], package: str) -> str:
    """The first executable among `candidates` (paths or names); else skip (fail under CI)."""
    for candidate in candidates:
        found = candidate if os.access(candidate, os.X_OK) else shutil.which(candidate)
        if found:
            return found
    reason = f"{candidates[0]} is not installed (package {package}: run scripts/test-tools.sh)"
    if IN_CI:
        pytest.fail("CI=true but " + reason, pytrace=False)
    pytest.skip(reason)


def scep_submit() -> str:
    # Debian keeps certmonger's helpers in /usr/lib/certmonger, other systems in libexec.
    return need(
        ("/usr/lib/certmonger/scep-submit", "/usr/libexec/certmonger/scep-submit"), "certmonger"
    )


def client_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The live server is on loopback: never through a proxy from the environment.
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost", **extra)
    return env


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        args,
        env=env or client_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def scep_url(live_server) -> str:
    ensure_ca(actor="tests")
    return live_server.url + "/scep"


@pytest.fixture
def enrollment() -> Enrollment:
    return Enrollment.objects.create(name="Servers")


# ------------------------------------------------------------------ certmonger


@dataclass
class Certmonger:
    env: dict[str, str]
    root: Path
    getcert: str

    def __call__(self, *args: str):
        return run([self.getcert, *args], env=self.env)

    def wait_for_ca(self, name: str) -> str:
        """certmonger fetches GetCACaps and GetCACert in the background after add-scep-ca."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            listing = self("list-cas", "-c", name).stdout
            if "thumbprint (SHA1)" in listing:
                return listing
            time.sleep(0.3)
        pytest.fail(f"certmonger never fetched the CA certificates:\n{listing}")

    def status(self, request_id: str) -> str:
        return self("list", "-i", request_id).stdout


@pytest.fixture
def certmonger(tmp_path):
    daemon = need(("/usr/sbin/certmonger", "certmonger"), "certmonger")
    getcert = need(("/usr/bin/getcert", "getcert"), "certmonger")
    scep_submit()
    root = tmp_path / "certmonger"
    dirs = {name: root / name for name in ("cas", "requests", "local", "config", "tmp", "out")}
    for path in dirs.values():
        path.mkdir(parents=True)
    # A unix socket path must stay short (about 100 bytes): not under a deep tmp_path.
    socket_dir = Path(tempfile.mkdtemp(prefix="cm-", dir="/tmp"))
    socket = socket_dir / "sock"
    env = client_env(
        CERTMONGER_CAS_DIR=str(dirs["cas"]),
        CERTMONGER_REQUESTS_DIR=str(dirs["requests"]),
        CERTMONGER_LOCAL_CA_DIR=str(dirs["local"]),
        CERTMONGER_CONFIG_DIR=str(dirs["config"]),
        CERTMONGER_TMPDIR=str(dirs["tmp"]),
        CERTMONGER_SYSTEM_LOCK_FILE=str(root / "lock"),
        CERTMONGER_PVT_ADDRESS=f"unix:path={socket}",
    )
    log = (root / "daemon.log").open("w")
    # -n: foreground; -L -P: only a private listening socket, no D-Bus; -d 1: some logging.
    process = subprocess.Popen(
        [daemon, "-n", "-L", "-P", str(socket), "-d", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"certmonger did not start: {(root / 'daemon.log').read_text()}")
            time.sleep(0.1)
        yield Certmonger(env, dirs["out"], getcert)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_scep_submit_get_ca_caps_and_get_ca_cert(scep_url, tmp_path):
    helper = scep_submit()
    caps = run([helper, "-u", scep_url, "-c"])
    assert caps.returncode == 0, caps.stdout + caps.stderr
    assert set(caps.stdout.split()) == {
        "POSTPKIOperation",
        "Renewal",
        "SHA-256",
        "SHA-512",
        "AES",
        "SCEPStandard",
    }
    certs = run([helper, "-u", scep_url, "-C"])
    assert certs.returncode == 0, certs.stdout + certs.stderr
    pem = certs.stdout.encode()
    found = x509.load_pem_x509_certificates(pem)
    ca_cert = ca_certificate(CertificateAuthority.objects.get(active=True))
    ra_cert, _ = ra_credentials()
    # scep-submit prints the RA (the encryption certificate) first, then the CA.
    assert found[:2] == [ra_cert, ca_cert]


def test_certmonger_enrolls_renews_and_is_refused_a_wrong_challenge(
    scep_url, certmonger, enrollment
):
    added = certmonger("add-scep-ca", "-c", "portal", "-u", scep_url)
    assert added.returncode == 0, added.stdout + added.stderr
    listing = certmonger.wait_for_ca("portal")
    ca_cert = ca_certificate(CertificateAuthority.objects.get(active=True))
    ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(ca_der).hexdigest().upper()  # certmonger shows SHA-1 thumbprints
    assert " ".join(sha1[i : i + 8] for i in range(0, 40, 8)) in listing

    # Enrollment with a one-time challenge (getcert request -L).
    key_file, cert_file = certmonger.root / "key.pem", certmonger.root / "cert.pem"
    challenge = issue_enrollment_challenge(enrollment)
    request = certmonger(
        "request", "-c", "portal", "-I", "good", "-w", "-N", "CN=certmonger.example",
        "-k", str(key_file), "-f", str(cert_file), "-L", challenge,
    )  # fmt: skip
    assert request.returncode == 0, request.stdout + request.stderr + certmonger.status("good")
    assert "status: MONITORING" in certmonger.status("good")
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    record = IssuedCertificate.objects.get(sha256=sha256_hex(certificate))
    assert enrollment_of(record) == enrollment
    assert record.subject == "CN=certmonger.example"
    certificate.verify_directly_issued_by(ca_cert)
    assert ScepChallenge.objects.get().used_at is not None

    # Renewal: certmonger signs a PKCSReq with the certificate it has (the "Renewal" cap).
    renewed = certmonger("resubmit", "-i", "good", "-w")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr + certmonger.status("good")
    second = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert second.serial_number != certificate.serial_number
    second_record = IssuedCertificate.objects.get(sha256=sha256_hex(second))
    assert ScepRequest.objects.get(certificate=second_record).renewal_of == record
    assert enrollment_of(second_record) == enrollment

    # A wrong challenge: refused (badRequest), nothing issued.
    before = IssuedCertificate.objects.count()
    bad = certmonger(
        "request", "-c", "portal", "-I", "bad", "-w", "-N", "CN=intruder.example",
        "-k", str(certmonger.root / "bad-key.pem"), "-f", str(certmonger.root / "bad.pem"),
        "-L", "not-the-challenge",
    )  # fmt: skip
    status = certmonger.status("bad")
    assert bad.returncode != 0
    assert "status: CA_REJECTED" in status, status
    assert "not permitted" in status  # certmonger's words for failInfo badRequest
    assert IssuedCertificate.objects.count() == before
    assert not (certmonger.root / "bad.pem").exists()


# ------------------------------------------------------------------ micromdm's scepclient


def test_micromdm_scepclient_is_refused_with_bad_alg(scep_url, tmp_path):
    scepclient = need(("scepclient",), "scep")
    challenge = issue_challenge()
    result = run(
        [
            scepclient,
            "-server-url", scep_url,
            "-private-key", str(tmp_path / "key.pem"),
            "-challenge", challenge,
            "-cn", "scepclient.example",
        ],
        cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    # scepclient reads our CA + RA, sends a DES-encrypted, SHA-1-signed PKCSReq, and reads
    # our signed CertRep: FAILURE, badAlg.
    assert result.returncode != 0, output
    assert "badAlg" in output, output
    assert IssuedCertificate.objects.count() == 0
    assert not (tmp_path / "client.pem").exists()
    assert ScepChallenge.objects.get().used_at is None  # the challenge is still good
    refusal = AuditEntry.objects.get(action="scep.refused")
    assert refusal.details["fail_info"] == "BAD_ALG"
