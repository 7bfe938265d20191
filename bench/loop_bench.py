"""The command loop the way a fleet loads it, and the framework floor, in one run.

Devices (each with its own certificate, bound to it as Authenticate would) get `--commands`
DeviceInformation commands each. Before the clock starts, every request is built and signed:
per device an Idle, then the acknowledgement of each command (its CommandUUID is known once
queued). Debian's `wrk` replays them over HTTPS through nginx and gunicorn, one connection per
wrk thread and each thread owning its own devices, so a device never has two requests in
flight. The floor is `/ping` (an empty Django view) hit the same way in the same run.

Used by bench/run.py; alone: `python bench/loop_bench.py` starts the bench stack itself.
"""

import json
import multiprocessing
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

LUA = Path(__file__).resolve().parent / "loop.lua"
PREFIX = "BENCH-LOOP-"
QUERIES = ["DeviceName", "OSVersion", "BatteryLevel"]


def _sign_all(jobs: list[tuple[bytes, bytes, bytes]]) -> list[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.simulator import sign_detached  # noqa: PLC0415 - in the pool's processes

    signed, cache = [], {}
    for body, cert_der, key_pem in jobs:
        if key_pem not in cache:
            cache[key_pem] = serialization.load_pem_private_key(key_pem, None)
        signed.append(sign_detached(body, x509.load_der_x509_certificate(cert_der), cache[key_pem]))
    return signed


def make_fleet(count: int, prefix: str = PREFIX):
    """`count` managed devices, each with its own certificate from the portal's CA (one shared
    key pair: the server verifies each certificate and signature all the same)."""
    from cryptography.hazmat.primitives import serialization
    from django.utils import timezone

    from certs.ca import issue_certificate
    from devices.models import CertificateBinding, Device
    from tests.simulator import TOPIC, make_csr, make_key

    key = make_key()
    now = timezone.now()
    devices = Device.objects.bulk_create(
        Device(
            udid=f"{prefix}{i:06d}",
            state=Device.State.ENROLLED,
            topic=TOPIC,
            push_token=uuid.uuid4().hex * 2,
            push_magic=str(uuid.uuid4()).upper(),
            platform="iOS",
            os_version="17.4",
            enrolled_at=now,
            authenticated_at=now,
            token_updated_at=now,
            last_seen_at=now,
        )
        for i in range(count)
    )
    certificates = []
    bindings = []
    for device in devices:
        certificate, record = issue_certificate(make_csr(key, device.udid), actor="bench")
        certificates.append(certificate)
        bindings.append(CertificateBinding(certificate=record, device=device, bound_at=now))
    CertificateBinding.objects.bulk_create(bindings)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return devices, certificates, key_pem


def remove_fleet() -> None:
    """Delete the bench devices (requests still finishing after wrk stopped may hold locks)."""
    import time

    from django.db import IntegrityError, OperationalError

    from commands.models import Command
    from devices.models import Device

    for attempt in range(5):
        try:
            Device.objects.filter(udid__startswith=PREFIX).delete()
            Command.objects.filter(queued_by="bench-loop").delete()
            return
        except (OperationalError, IntegrityError):
            time.sleep(1 + attempt)
    raise RuntimeError("could not remove the bench devices")


def write_requests(folder: Path, devices, certificates, key_pem, uuids, threads: int) -> int:
    """The per-thread request files; returns how many exchanges they hold."""
    import plistlib

    from cryptography.hazmat.primitives import serialization

    rows = []  # (thread, body, cert_der)
    idles = []
    for index, (device, certificate) in enumerate(zip(devices, certificates, strict=True)):
        der = certificate.public_bytes(serialization.Encoding.DER)
        idle = plistlib.dumps({"UDID": device.udid, "Status": "Idle"})
        idles.append((index % threads, idle, der))
    for step in range(len(uuids) + 1):  # step 0: Idle; step k: the answer to command k
        for index, (device, certificate) in enumerate(zip(devices, certificates, strict=True)):
            der = certificate.public_bytes(serialization.Encoding.DER)
            if step == 0:
                body = plistlib.dumps({"UDID": device.udid, "Status": "Idle"})
            else:
                body = plistlib.dumps(
                    {
                        "UDID": device.udid,
                        "Status": "Acknowledged",
                        "CommandUUID": uuids[step - 1],
                        "QueryResponses": {
                            "DeviceName": f"Bench {index}",
                            "OSVersion": "17.4",
                            "BatteryLevel": 0.5,
                        },
                    }
                )
            rows.append((index % threads, body, der))
    everything = rows + idles
    jobs = [(body, der, key_pem) for _thread, body, der in everything]
    chunks = [jobs[i::4] for i in range(4)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        parts = pool.map(_sign_all, chunks)
    signatures = [None] * len(jobs)
    for offset, part in enumerate(parts):
        signatures[offset::4] = part
    files = {}
    for position, ((thread, body, _der), signature) in enumerate(
        zip(everything, signatures, strict=True)
    ):
        suffix = "req" if position < len(rows) else "idle"
        if (thread, suffix) not in files:
            files[thread, suffix] = open(folder / f"thread-{thread}.{suffix}", "wb")  # noqa: SIM115
        handle = files[thread, suffix]
        handle.write(f"{len(signature)} {len(body)}\n".encode() + signature.encode() + body)
    for handle in files.values():
        handle.close()
    return len(rows)


def wrk(url: str, path: str, folder: Path, threads: int, seconds: int, content_type=None) -> dict:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{threads}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url.rstrip("/") + path,
        "--",
        str(folder),
    ]
    if content_type:
        command.append(content_type)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    output = result.stdout
    match = re.search(r"^WRKJSON (.*)$", output, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    figures = json.loads(match.group(1))
    figures["per_second"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def statements_per_exchange() -> dict[str, list[str]]:
    """The SQL statements (their first 120 characters; BEGIN, COMMIT and savepoints count too)
    of each kind of exchange, captured by Django (CaptureQueriesContext) on
    the same code and database, through Django's test Client, with a device of its own
    (certificate from the portal's CA, bound, enrolled) signing with Mdm-Signature. One round
    first warms the process's caches; the second is counted."""
    import plistlib

    from cryptography.hazmat.primitives import serialization
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from commands.queue import enqueue
    from devices.models import Device
    from tests.simulator import CONNECT_CT, sign_detached

    (device,), (certificate,), key_pem = make_fleet(1, prefix=PREFIX + "SQL-")
    key = serialization.load_pem_private_key(key_pem, None)
    client = Client(HTTP_HOST="localhost")

    def exchange(message: dict) -> tuple[dict | None, list[str]]:
        body = plistlib.dumps({"UDID": device.udid, **message})
        headers = {"Mdm-Signature": sign_detached(body, certificate, key)}
        with CaptureQueriesContext(connection) as captured:
            response = client.generic(
                "PUT", "/mdm/connect", body, content_type=CONNECT_CT, headers=headers
            )
        if response.status_code != 200:
            raise RuntimeError(f"/mdm/connect answered {response.status_code}")
        command = plistlib.loads(response.content) if response.content else None
        return command, [query["sql"][:120] for query in captured.captured_queries]

    def answer(command: dict) -> dict:
        return {
            "Status": "Acknowledged",
            "CommandUUID": command["CommandUUID"],
            "QueryResponses": {"DeviceName": "Bench", "OSVersion": "17.4", "BatteryLevel": 0.5},
        }

    statements = {}
    selection = Device.objects.filter(pk=device.pk)
    for _round in range(2):
        for _ in range(2):
            enqueue(selection, "DeviceInformation", {"Queries": QUERIES}, queued_by="bench-loop")
        first, statements["idle_to_command"] = exchange({"Status": "Idle"})
        second, statements["acknowledged_to_next_command"] = exchange(answer(first))
        nothing, statements["acknowledged_to_nothing"] = exchange(answer(second))
        assert first and second and nothing is None, "unexpected answers from /mdm/connect"
        nothing, statements["idle_to_nothing"] = exchange({"Status": "Idle"})
        assert nothing is None
    return statements


def run(
    url: str, *, devices: int = 2000, commands: int = 8, threads: int = 32, seconds: int = 10
) -> dict:
    from commands.queue import enqueue
    from devices.models import Device

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: scripts/bench-tools.sh installs it")
    remove_fleet()
    fleet, certificates, key_pem = make_fleet(devices)
    selection = Device.objects.filter(udid__startswith=PREFIX)
    uuids = [
        enqueue(selection, "DeviceInformation", {"Queries": QUERIES}, queued_by="bench-loop").uuid
        for _ in range(commands)
    ]
    folder = Path(tempfile.mkdtemp(prefix="mdm-loop-"))
    try:
        listed = write_requests(folder, fleet, certificates, key_pem, uuids, threads)
        floor = wrk(url, "/ping", folder, threads, seconds)
        loop = wrk(url, "/mdm/connect", folder, threads, seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    import time

    from commands.models import QueuedCommand, Status

    time.sleep(2)  # requests wrk left in flight finish in gunicorn
    acknowledged = QueuedCommand.objects.filter(
        device__udid__startswith=PREFIX, status=Status.ACKNOWLEDGED
    ).count()
    try:
        statements = statements_per_exchange()
    finally:
        remove_fleet()
    return {
        "devices": devices,
        "exchanges_prepared": listed,
        "floor": floor,
        "loop": loop,
        "errors": errors(loop),
        "acknowledged": acknowledged,
        "ratio": loop["per_second"] / floor["per_second"],
        "statements_per_exchange": {kind: len(sql) for kind, sql in statements.items()},
        "statements": statements,
    }


def errors(figures: dict) -> int:
    """Failed requests of a wrk run: socket errors and answers other than 200."""
    return (
        sum(figures[name] for name in ("errors_connect", "errors_read", "errors_timeout"))
        + (figures["bad"])
    )


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.stack import Stack
    from bench.testdb import setup_django

    stack = Stack.start()
    setup_django()
    args = dict(arg.split("=") for arg in sys.argv[1:])  # devices=2000 commands=8 ...
    print(json.dumps(run(stack.url, **{k: int(v) for k, v in args.items()}), indent=2))
