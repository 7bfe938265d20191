"""A short soak (bench/soak.py) for real: the production stack on free ports in a folder of its
own, 20 simulated devices polling for 40 seconds while commands are enqueued through the REST
API, the web side and the worker each restarted once; afterwards no command is lost (stuck as
sent, an answer not recorded, a 201 without its rows), none executed twice, no 5xx from the
portal, and the portal unreachable only while the web side restarted. About two minutes, most
of it the stack's first start."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_production import clean_environment, free_port

pytestmark = pytest.mark.production

ROOT = Path(__file__).resolve().parent.parent
DEVICES = 20


@pytest.fixture(scope="module")
def soak():
    folder = Path(tempfile.mkdtemp(prefix="mdm-soak-test-"))
    folder.chmod(0o755)  # the service user reads the APNs stand-in's certificate in it
    venv = ROOT / "var" / "serve-test-venv"  # the production test's, kept between runs
    venv.parent.mkdir(exist_ok=True)
    env = clean_environment(MDM_SERVE_VENV=str(venv), MDM_WEB_WORKERS="2")
    stack = folder / "stack"
    command = [
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        "--devices", str(DEVICES),
        "--minutes", str(40 / 60),
        "--drain", "10",
        "--poll-interval", "4",
        "--rate", "3",
        "--fleet-every", "12",
        "--not-now-rate", "0.1",
        "--concurrency", "8",
        "--dir", str(stack),
        "--https-port", str(free_port()),
        "--pg-port", str(free_port()),
        "--redis-port", str(free_port()),
        "--apns-port", str(free_port()),
        "--stop",
    ]  # fmt: skip
    try:
        run = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        print(run.stdout, run.stderr[-3000:])
        results = stack / "results.json"
        if run.returncode:
            print(evidence(stack, results))
        yield run, json.loads(results.read_text()) if results.exists() else None
    finally:
        subprocess.run(
            [str(ROOT / "scripts" / "serve.sh"), "stop"],
            env={**env, "MDM_SERVE_DIR": str(stack)},
            capture_output=True,
            timeout=300,
        )
        shutil.rmtree(folder, ignore_errors=True)


def evidence(stack: Path, results: Path) -> str:
    """What a failed soak leaves to look at before its folder goes: which requests got a 5xx
    (the simulator's and the enqueuer's counts, nginx's access log) and the errors gunicorn
    logged."""
    lines = []
    if results.exists():
        data = json.loads(results.read_text())
        for side in ("simulator", "enqueue"):
            lines.append(f"{side} 5xx: {data.get(side, {}).get('portal_5xx')}")
    logs = stack / "log"
    access = logs / "nginx-access.log"
    if access.exists():
        lines += [
            line for line in access.read_text(errors="replace").splitlines() if '" 5' in line
        ][:20]
    gunicorn = logs / "gunicorn.log"
    if gunicorn.exists():
        text = gunicorn.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(text) if " ERROR " in line or " WARNING " in line]
        for i in hits[:5]:
            lines.extend([f"--- gunicorn.log:{i + 1}", *text[i : i + 60]])
    return "\n".join(lines)


def test_nothing_is_lost_or_doubled_across_restarts(soak):
    run, results = soak
    assert results is not None, run.stdout + run.stderr
    checks = results["checks"]
    assert run.returncode == 0 and results["ok"], checks["problems"]
    assert checks["rows"] >= 100  # a fleet command and targeted ones, through both restarts
    assert results["enqueue"]["fleet_commands"] >= 2
    assert checks["stuck_sent"] == checks["lost_answers"] == checks["executed_twice"] == 0
    assert checks["enqueued_missing"] == checks["enqueued_short_of_rows"] == 0
    assert checks["portal_5xx"] == 0
    assert checks["unreachable"] > 0  # the web restart was seen by the devices...
    assert checks["unreachable_outside_restarts"] == 0  # ...and only then
    assert checks["devices_polling_at_end"] == DEVICES
    outcomes = checks["outcomes"]
    assert outcomes["sent"] == 0
    assert (
        outcomes["acknowledged"] + outcomes["error"] + outcomes["not_now"] + outcomes["queued"]
        == checks["rows"]
    )
    assert "result: OK" in run.stdout and "executed twice" in run.stdout


def test_the_stack_is_stopped_afterwards(soak):
    run, results = soak
    stack = Path(results["config"]["folder"]) if results else None
    assert stack is not None
    assert not [p for p in (stack / "run").glob("*.pid")], os.listdir(stack / "run")
