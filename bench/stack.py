"""The production stack the benchmarks measure: `scripts/serve.sh` on its own folder and ports
(var/bench, HTTPS 9443, PostgreSQL 55434, Redis 56381 by default; MDM_BENCH_SERVE_DIR,
MDM_BENCH_HTTPS_PORT, MDM_BENCH_PG_PORT, MDM_BENCH_REDIS_PORT, MDM_BENCH_PUBLIC_URL override
them), so a benchmark never touches the production data in var/production nor the tests'
services.

    stack = Stack.start()      # serve.sh start; os.environ gets the stack's settings
    stack.url                  # https://localhost:9443
    stack.stop()
"""

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_env() -> dict[str, str]:
    """The stack's folder and ports; each overridable by MDM_BENCH_<NAME> (e.g.
    MDM_BENCH_HTTPS_PORT=9543), so two benchmark stacks can run side by side."""
    get = os.environ.get
    port = get("MDM_BENCH_HTTPS_PORT", "9443")
    return {
        "MDM_SERVE_DIR": get("MDM_BENCH_SERVE_DIR", str(ROOT / "var" / "bench")),
        "MDM_HTTPS_PORT": port,
        "MDM_SERVE_PG_PORT": get("MDM_BENCH_PG_PORT", "55434"),
        "MDM_SERVE_REDIS_PORT": get("MDM_BENCH_REDIS_PORT", "56381"),
        "MDM_PUBLIC_URL": get("MDM_BENCH_PUBLIC_URL", f"https://localhost:{port}"),
    }


BENCH_ENV = _bench_env()


def serve(command: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **BENCH_ENV}
    # The benchmark's own shell may carry another stack's settings: serve.sh decides them.
    for name in ("DATABASE_URL", "REDIS_URL", "MDM_DATA_DIR", "SECRET_KEY", "MDM_SECRETS_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), command, *extra],
        env=env,
        check=check,
        capture_output=True,
        text=True,
    )


def stack_env() -> dict[str, str]:
    """What `eval "$(serve.sh env)"` would export."""
    values = {}
    for line in serve("env").stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


@dataclass
class Stack:
    url: str
    env: dict[str, str]

    @classmethod
    def start(cls, *, web_workers: int | None = None) -> "Stack":
        if web_workers:
            os.environ["MDM_WEB_WORKERS"] = str(web_workers)
        result = serve("start", check=False)
        if result.returncode != 0:
            raise SystemExit(f"scripts/serve.sh start failed:\n{result.stdout}\n{result.stderr}")
        env = stack_env()
        os.environ.update(env)
        return cls(url=BENCH_ENV["MDM_PUBLIC_URL"], env=env)

    @property
    def log_dir(self) -> Path:
        return Path(BENCH_ENV["MDM_SERVE_DIR"]) / "log"

    @property
    def ca_file(self) -> Path:
        return Path(BENCH_ENV["MDM_SERVE_DIR"]) / "tls" / "chain.pem"

    @property
    def run_dir(self) -> Path:
        return Path(BENCH_ENV["MDM_SERVE_DIR"]) / "run"

    @property
    def superuser(self) -> dict[str, str]:
        """Django connection settings for the stack's PostgreSQL superuser: trusted over the
        cluster's private unix socket, for throwaway databases (the portal's role may not
        create any)."""
        return {
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": str(Path(BENCH_ENV["MDM_SERVE_DIR"]) / "services" / "pg-socket"),
            "PORT": BENCH_ENV["MDM_SERVE_PG_PORT"],
        }

    def web_workers(self) -> list[int]:
        """The pids of gunicorn's workers: the children of the master in run/gunicorn.pid
        ("<pid> <start time>")."""
        master = (self.run_dir / "gunicorn.pid").read_text().split()[0]
        workers = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if fields[1] == master:  # the parent's pid, after the state
                workers.append(int(stat.parent.name))
        return sorted(workers)

    def restart(self, part: str) -> None:
        """Restart the web side or the workers (`web` or `workers`), as an admin would."""
        flag = {"web": "--web-only", "workers": "--workers-only"}[part]
        serve("stop", flag)
        serve("start", flag)

    def stop(self) -> None:
        serve("stop", check=False)
