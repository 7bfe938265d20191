"""The production stack's test harness (tests/test_production.py): the running stack as an
object (its URL, `serve.sh`, `manage.py` as the README runs it, HTTPS clients with or without a
TLS client certificate, a device that proves itself by that certificate) and the clean
environment it runs in."""

import os
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from tests.apns_standin import APNsStandIn
from tests.simulator import Response, SimulatedDevice

ROOT = Path(__file__).resolve().parent.parent
SERVE_USER = "mdm"
# What may not leak from the caller (the test suite runs on the test services' DATABASE_URL).
PORTAL_SETTINGS = ("MDM_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
PORTAL_SETTINGS += ("CSRF_TRUSTED_ORIGINS", "LOG_LEVEL", "DB_CONN_MAX_AGE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readable_by_others(path: Path) -> bool:
    """Whether an unprivileged user can read `path` (and traverse every parent)."""
    probe = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    check = probe + ["test", "-r", str(path), "-a", "-x", str(path)]
    return os.geteuid() != 0 or subprocess.run(check, capture_output=True).returncode == 0


def pem(data) -> bytes:
    return data.public_bytes(serialization.Encoding.PEM)


@dataclass
class Stack:
    repo: Path
    folder: Path
    port: int
    env: dict[str, str]
    apns: APNsStandIn
    exports: dict[str, str] = field(default_factory=dict)
    trust_pem: str = ""  # the server-TLS CA, from the enrollment profile's trust payload

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve(self, *command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.repo / "scripts/serve.sh"), *command],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def manage(self, *args: str) -> str:
        """`.venv/bin/python manage.py ...` with `eval "$(scripts/serve.sh env)"`, as the README."""
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **self.exports}
        result = subprocess.run(
            [str(self.repo / ".venv/bin/python"), "manage.py", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def client(self, certificate=None, key=None, verify=True) -> httpx.Client:
        """A client of the portal: verifying its chain against the profile's TLS CA, and
        presenting `certificate` as its TLS client certificate."""
        if verify:
            context = ssl.create_default_context(cadata=self.trust_pem)
        else:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if certificate is not None:
            folder = Path(tempfile.mkdtemp(dir=self.folder))
            (folder / "cert.pem").write_bytes(pem(certificate))
            (folder / "key.pem").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def device(self, certificate, key, **kwargs) -> SimulatedDevice:
        """A device that proves who it is by its TLS client certificate only."""
        http = self.client(certificate, key)

        def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
            answer = http.put(path, content=body, headers=headers)
            return Response(answer.status_code, answer.content)

        return SimulatedDevice(send=send, certificate=certificate, key=key, auth=None, **kwargs)


def clean_environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PORTAL_SETTINGS)}
    env.pop("PYTHONPATH", None)
    return {**env, **settings}
