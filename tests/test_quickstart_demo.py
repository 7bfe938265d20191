"""`scripts/quickstart.sh` for real, on its own port and data folder.

With `--demo 3 --detach`: the demo push certificate, the simulator's APNs stand-in and 3
simulated devices that enroll; a DeviceInformation enqueued through the REST API is pushed
(through the stand-in, never Apple) and answered within seconds; `stop` leaves no process of
the demo behind. Without `--demo`, the quickstart is what it
was: no push certificate, no simulator.
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scripts" / "quickstart.sh"
# What may not leak from the caller (the suite may run on the test services' DATABASE_URL).
PORTAL_SETTINGS = ("MDM_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
DEVICES = 3
# Enqueue to answer: the coalescing window (2 s), the embedded broker's polling, the push and
# the simulated device's poll. Generous for a loaded machine, far below a sweep's minute.
ANSWER_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, what: str, timeout: float, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def processes_of(data: Path) -> list[str]:
    """Processes (other than this one) whose environment names the demo's data folder."""
    mark = f"MDM_DATA_DIR={data}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes()!r}")
        except OSError:
            continue
    return found


class Quickstart:
    """The script on a free port with a data folder of its own and a clean environment."""

    def __init__(self, folder: Path):
        self.port, self.data = free_port(), folder / "var"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(PORTAL_SETTINGS)}
        self.env.pop("PYTHONPATH", None)
        self.env.update(
            MDM_PORT=str(self.port),
            MDM_DATA_DIR=str(self.data),
            MDM_DEMO_APNS_PORT=str(free_port()),
            MDM_VENV=sys.prefix,  # the venv running the tests: nothing to install
        )

    def script(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(QUICKSTART), *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def api(self) -> httpx.Client:
        """The REST API as the demo admin (a token made with `mdm_apitoken`)."""
        manage = [sys.executable, "manage.py", "mdm_apitoken", "create", "--user", "admin"]
        created = subprocess.run(
            manage, cwd=ROOT, env=self.env, capture_output=True, text=True, check=True
        )
        key = re.search(r"^(mdm_\S+)$", created.stdout, re.MULTILINE)[1]
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}/api/v1",
            headers={"Authorization": f"Token {key}"},
            timeout=30,
        )

    def run(self, args: tuple[str, ...], check) -> str:
        """Start with `args`, call `check(api)`, stop; stop must leave no process behind."""
        started = self.script(*args)
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            check(self.api())
        finally:
            stopped = self.script("stop", timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not list((self.data / "run").glob("*.pid"))
        assert processes_of(self.data) == []
        return started.stdout


def test_quickstart_without_demo_makes_no_push_certificate_and_no_simulator(tmp_path):
    quickstart = Quickstart(tmp_path)

    def check(api: httpx.Client) -> None:
        assert api.get("/certificates/push/").json() == {"push_certificate": None}
        assert not (quickstart.data / "run" / "simulator.pid").exists()
        assert "MDM_APNS_URL=" not in (Path("/proc") / web_pid(quickstart)).joinpath(
            "environ"
        ).read_text(errors="replace")

    out = quickstart.run(("--detach",), check)
    assert "simulated" not in out and "Logs:              " in out
    assert not (quickstart.data / "apns-standin").exists()


def web_pid(quickstart: Quickstart) -> str:
    return (quickstart.data / "run" / "web.pid").read_text().strip()


def test_quickstart_demo_devices_enroll_and_answer_a_command(tmp_path):
    quickstart = Quickstart(tmp_path)
    out = quickstart.run(
        ("--demo", str(DEVICES), "--detach"), lambda api: demo_checks(api, quickstart.data)
    )
    assert f"{DEVICES} simulated devices" in out and "never to Apple" in out


def demo_checks(api: httpx.Client, data: Path) -> None:
    push = api.get("/certificates/push/").json()["push_certificate"]
    assert push["demo"] is True and push["topic"].startswith("com.apple.mgmt.External.")

    def enrolled() -> list[dict]:
        devices = api.get("/devices/", params={"state": "enrolled"}).json()["results"]
        return devices if len(devices) == DEVICES else []

    devices = wait_for(enrolled, f"{DEVICES} enrolled devices", 180, data / "run/simulator.log")
    assert all(d["topic"] == push["topic"] for d in devices if "topic" in d)
    udid = devices[0]["udid"]
    time.sleep(3)  # the devices' first inventory goes first: time the command on its own
    began = time.monotonic()
    queued = api.post(
        "/commands/",
        json={
            "request_type": "DeviceInformation",
            "devices": [udid],
            "payload": {"Queries": ["DeviceName", "OSVersion"]},
        },
    )
    assert queued.status_code in (200, 201), queued.text
    uuid = queued.json()["command_uuid"]

    def answered() -> bool:
        return api.get(f"/commands/{uuid}/").json()["progress"]["acknowledged"] == 1

    wait_for(answered, "the DeviceInformation answer", ANSWER_SECONDS, data / "run/worker.log")
    elapsed = time.monotonic() - began
    assert elapsed < ANSWER_SECONDS
    worker_log = (data / "run/worker.log").read_text()
    assert "api.push.apple.com" not in worker_log and "api.sandbox.push.apple.com" not in worker_log
