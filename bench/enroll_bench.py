"""Enrollment: devices enrolled per second over HTTPS, by the fleet simulator (`mdm_simulate`):
each device downloads its enrollment profile, gets its identity by SCEP, sends Authenticate and
TokenUpdate and answers its initial inventory, against the stack through nginx.

The simulator runs as a subprocess (`manage.py mdm_simulate --json FILE`, on the stack's
settings) and makes its keys before its clock starts; the rate is devices enrolled over the
enrollment's own duration from its JSON summary. Without the simulator
(mdm_portal/management/commands/mdm_simulate.py) the part is skipped.

The profile carries the active push certificate's topic: a stack without one gets a test one
(tests/apns_standin.py's PKI), as a trial would.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / "mdm_portal" / "management" / "commands" / "mdm_simulate.py"


def unavailable() -> str:
    """Why the part cannot run ("" when it can)."""
    return "" if COMMAND.exists() else "simulator not available (no mdm_simulate command yet)"


def ensure_push_certificate() -> None:
    from certs.pushcert import active_push_certificate
    from tests.apns_standin import StandInPKI, install_push_certificate

    if active_push_certificate() is None:
        with tempfile.TemporaryDirectory(prefix="bench-pushcert-") as folder:
            install_push_certificate(StandInPKI.create(Path(folder) / "pki"))


def run(url: str, ca_file: str | Path, *, devices: int = 500, concurrency: int = 16) -> dict:
    """Enroll `devices` simulated devices; the simulator's summary and the rate."""
    if reason := unavailable():
        return {"skipped": reason}
    ensure_push_certificate()
    with tempfile.TemporaryDirectory(prefix="bench-enroll-") as folder:
        summary_file = Path(folder) / "summary.json"
        command = [
            sys.executable,
            str(ROOT / "manage.py"),
            "mdm_simulate",
            "--url",
            url,
            "--devices",
            str(devices),
            "--concurrency",
            str(concurrency),
            "--ca-file",
            str(ca_file),
            "--client-cert",
            "--json",
            str(summary_file),
            "--no-progress",
        ]
        result = subprocess.run(
            command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True
        )
        if not summary_file.exists():
            raise RuntimeError(f"mdm_simulate wrote no summary:\n{result.stdout}\n{result.stderr}")
        summary = json.loads(summary_file.read_text())
    # The enrollment's own duration when the summary gives it, else the run's (keys excluded).
    seconds = summary.get("enroll_seconds") or summary["seconds"]
    return {
        "devices": devices,
        "concurrency": concurrency,
        "enrolled": summary["enrolled"],
        "failed": summary.get("enroll_failed", 0),
        "seconds": seconds,
        "per_second": summary["enrolled"] / seconds if seconds else 0.0,
        "requests_per_second": summary.get("requests_per_second"),
        "latency_ms": summary.get("latency_ms", {}),
        "exit_status": result.returncode,
        "summary": summary,
    }
