"""Enrollment: devices enrolled per second over HTTPS, by the fleet simulator (`mdm_simulate`):
each device downloads its enrollment profile, gets its identity by SCEP, sends Authenticate and
TokenUpdate and answers its initial inventory, against the stack through nginx.

The simulator runs as a subprocess (`manage.py mdm_simulate --json FILE`, on the stack's
settings) and makes its keys before its clock starts; the rate is devices enrolled over the
enrollment's own duration from its JSON summary.

The profile carries the active push certificate's topic: a stack without one gets the demo one
(`mdm_pushcert demo`), as a trial would.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_push_certificate() -> None:
    """The demo push certificate, unless one is active (a real one, or the demo's)."""
    from certs.pushcert import active_push_certificate
    from certs.pushcert_demo import ensure_demo_push_certificate
    from devices.topics import devices_on_other_topic

    if active_push_certificate() is None:
        ensure_demo_push_certificate(orphaned_devices=devices_on_other_topic, actor="bench")


def run(url: str, ca_file: str | Path, *, devices: int = 500, concurrency: int = 16) -> dict:
    """Enroll `devices` simulated devices; the simulator's summary and the rate."""
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
