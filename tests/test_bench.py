"""bench/run.py for real: `--quick --only loop` starts the bench stack (scripts/serve.sh) in a
folder of its own on free ports, replays the command loop and its floor with wrk, counts the
SQL statements of each kind of exchange, prints the table, writes the JSON and stops the stack.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.test_production import clean_environment, free_port, readable_by_others

pytestmark = pytest.mark.production

ROOT = Path(__file__).resolve().parent.parent


def test_quick_loop_run_prints_the_table_writes_the_json_and_stops_the_stack():
    if not shutil.which("wrk") or not readable_by_others(ROOT):
        reason = "needs wrk (scripts/bench-tools.sh) and a repository the service user can read"
        if IN_CI:
            pytest.fail("CI=true but the benchmark test " + reason, pytrace=False)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="mdm-bench-test-"))
    folder.chmod(0o755)  # the service user and postgres traverse it
    port, pg_port, redis_port = free_port(), free_port(), free_port()
    bench_env = {  # what bench/stack.py hands to scripts/serve.sh
        "MDM_BENCH_SERVE_DIR": str(folder / "stack"),
        "MDM_BENCH_HTTPS_PORT": str(port),
        "MDM_BENCH_PG_PORT": str(pg_port),
        "MDM_BENCH_REDIS_PORT": str(redis_port),
    }
    serve_env = {
        "MDM_SERVE_DIR": str(folder / "stack"),
        "MDM_HTTPS_PORT": str(port),
        "MDM_SERVE_PG_PORT": str(pg_port),
        "MDM_SERVE_REDIS_PORT": str(redis_port),
        "MDM_PUBLIC_URL": f"https://localhost:{port}",
    }
    env = clean_environment(
        **bench_env,
        MDM_WEB_WORKERS="2",
        MDM_CELERY_WORKERS="1",
        # As tests/test_production.py: the service's venv kept from run to run.
        MDM_SERVE_VENV=str(ROOT / "var" / "serve-test-venv"),
    )
    results = folder / "results.json"
    command = [sys.executable, "bench/run.py", "--quick", "--only", "loop", "--json", str(results)]
    try:
        run = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "command loop: exchanges" in run.stdout
        assert "SQL statements: idle -> nothing" in run.stdout
        report = json.loads(results.read_text())
        loop = report["parts"]["loop"]
        assert loop["errors"] == 0
        assert loop["loop"]["per_second"] > 0 and loop["floor"]["per_second"] > 0
        assert loop["acknowledged"] > 0  # commands went round the loop and were answered
        assert set(loop["statements_per_exchange"]) == {
            "idle_to_command",
            "acknowledged_to_next_command",
            "acknowledged_to_nothing",
            "idle_to_nothing",
        }
        assert all(count > 0 for count in loop["statements_per_exchange"].values())
        assert {row["figure"] for row in report["table"]} >= {"command loop / floor"}
        status = subprocess.run(
            [str(ROOT / "scripts" / "serve.sh"), "status"],
            env={**env, **serve_env},
            capture_output=True,
            text=True,
        )
        assert status.returncode != 0, "run.py left the stack running:\n" + status.stdout
    finally:
        subprocess.run(
            [str(ROOT / "scripts" / "serve.sh"), "stop"],
            env={**env, **serve_env},
            capture_output=True,
            timeout=300,
        )
        shutil.rmtree(folder, ignore_errors=True)
