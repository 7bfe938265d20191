"""Real services a fault test can break on purpose: a throwaway redis-server, a PostgreSQL
cluster of the test's own, and the portal served by gunicorn in a child process.

The suite's services (scripts/services.sh) are shared by every test of the run, so a test that
stops its database or broker needs its own: each helper here runs on a free port, in the
test's folder, and stops only the processes it started.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, what: str, timeout: float = 30.0, alive=None, log: Path | None = None):
    """Poll `condition` until true; fail early when `alive()` says the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and not alive():
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def broker_client(url: str):
    """A Celery client of the broker at `url` that sends tasks by name, as celery beat does.

    Not the current app: the portal's shared tasks that later tests queue in this process
    would go to this test's broker.
    """
    from celery import Celery

    return Celery(broker=url, set_as_current=False)


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Child:
    """A server process this test started (and only that one is ever stopped)."""

    process: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


class RedisServer(_Child):
    """redis-server on a free port, without persistence; `start()` again after `stop()`."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: accepts(self.port), "redis-server", alive=self.alive)
        return self


def pg_binaries() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed), or None."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(folder) / "initdb", os.X_OK):
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb in `folder`): stopped and started at will.

    PostgreSQL refuses to run as root, so as root its tools run as the `postgres` user (as
    scripts/services.sh does); the folder is handed to that user.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.bin = pg_binaries()
        self.log = folder / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://mdm:mdm@127.0.0.1:{self.port}/mdm"

    def _run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *command], cwd="/", capture_output=True, text=True, **kwargs
        )
        if done.returncode:  # say why, and what the server logged
            server_log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise AssertionError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"\n--- {self.log}:\n{server_log}"
            )
        return done

    def init(self) -> PostgresCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            for parent in self.folder.parents:  # the postgres user must reach its folder
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o001)
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
        initdb += ["--auth-local=trust", "--auth-host=trust", "--no-sync", "--encoding=UTF8"]
        self._run(*initdb)
        conf = f"listen_addresses = '127.0.0.1'\nport = {self.port}\nfsync = off\n"
        conf += f"unix_socket_directories = '{self.folder}'\nsynchronous_commit = off\n"
        with open(self.data / "postgresql.conf", "a") as handle:
            handle.write(conf)
        self.start()
        for sql in (
            "CREATE ROLE mdm LOGIN CREATEDB PASSWORD 'mdm'",
            "CREATE DATABASE mdm OWNER mdm",
        ):
            psql = [str(self.bin / "psql"), "-X", "-q", "-h", str(self.folder)]
            self._run(*psql, "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-c", sql)
        return self

    def start(self) -> None:
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
        self._run(*pg_ctl, "-w", "-t", "30", "start", stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            # A loaded machine (the whole suite beside other work) can take over pg_ctl's
            # default minute to checkpoint and stop.
            pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w"]
            self._run(*pg_ctl, "-t", "180", "stop")


class Portal(_Child):
    """The portal served by gunicorn (one worker process, so "the same process" is a fact) on a
    free port, with the environment `env` adds to the suite's settings."""

    def __init__(self, folder: Path, env: dict[str, str]):
        from django.conf import settings

        self.folder = folder
        self.port = free_port()
        self.log = folder / "gunicorn.log"
        self.env = {
            # Not the suite's own portal settings: only what `env` says (a test's services).
            **{k: v for k, v in os.environ.items() if not k.startswith(("MDM_", "REDIS_URL"))},
            "SECRET_KEY": settings.SECRET_KEY,
            "MDM_SECRETS_KEY": settings.MDM_SECRETS_KEY,
            "MDM_DATA_DIR": str(folder / "var"),
            "MDM_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            **env,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self) -> Portal:
        command = [sys.executable, "-m", "gunicorn", "mdm_portal.wsgi:application"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "60"]
        # No control socket: its default path is shared by every gunicorn of the user.
        command += ["--error-logfile", "-", "--no-control-socket"]
        log = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_until(self._answers, "gunicorn", timeout=60, alive=self.alive, log=self.log)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/scep?operation=GetCACaps", timeout=2).status_code > 0
        except httpx.HTTPError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
