"""A simulator run: make the keys, enroll the fleet, poll, wake on pushes, report.

`run(options)` is the entry point (the `mdm_simulate` command and `python -m simulator` call
it). Keys are made before the timed part, in worker processes when there are many (RSA keys
for SCEP; an ACME fleet's EC keys are cheap and made as each device enrolls). Then every
device enrolls (or is taken from the state file) and drains its queue once, at most
`concurrency` devices in flight. With a duration, devices keep polling: every
`poll_interval` seconds (with some jitter, so a fleet does not poll in step), sooner after a
poll that could not reach the portal, or at once when the APNs listener gets a push for them,
until the duration ends or, with 0, until SIGINT or SIGTERM.

In Setup Assistant mode (`setup_assistant`, with a test device CA) devices enroll as
Automated Device Enrollment ones do: no enrollment link, their MachineInfo POSTed to
<url>/dep/enroll, the serial numbers given (those the portal's DEP servers list), and
AwaitingConfiguration in their TokenUpdate until the portal sends DeviceConfigured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from . import scep
from .apns import APNsListener, parse_listen
from .attestation import AttestationCA
from .device import ExchangeFailed, Fleet, SimulatedDevice
from .device_ca import DeviceCA
from .report import Progress, Stats, summary_text, write_json
from .state import DeviceState, load_fleet, new_device, save_fleet

# What the portal's enrollment page means by its status (enrollment/views.py, as a client
# sees it).
PREFLIGHT_REASONS = {
    404: "no enrollment has this token",
    410: "this enrollment link is turned off, expired or used up",
    503: "the portal cannot enroll devices now (no push certificate yet, or misconfigured)",
}
POOL_THRESHOLD = 16  # fewer keys than this are made faster in this process


class SimulatorError(Exception):
    """The run cannot start (a bad URL, token, option or state file): a clear message."""


@dataclass
class Options:
    url: str
    devices: int = 1
    enrollment: str | None = None
    concurrency: int = 8
    duration: float | None = None  # None: drain once; 0: until SIGINT/SIGTERM
    poll_interval: float = 5.0
    not_now_rate: float = 0.0
    client_cert: bool = False
    ca_file: str | None = None
    state: str | None = None
    json: str | None = None
    apns_listen: str | None = None
    apns_tls_dir: str | None = None
    key_size: int = 2048
    timeout: float = 30.0
    progress: bool = True
    attestation_ca: str | None = None  # a folder written by AttestationCA.save
    setup_assistant: bool = False  # enroll from Setup Assistant (POST /dep/enroll)
    device_ca: str | None = None  # a folder written by DeviceCA.save
    serials: list[str] | None = None  # the new devices' serial numbers, in order
    ddm_fail_rate: float = 0.0  # share of declarative configurations that fail to apply

    def check(self) -> None:
        problems = []
        if not self.url:
            problems.append("--url is required")
        elif not self.url.startswith(("http://", "https://")):
            problems.append(f"--url must be an http:// or https:// URL, not {self.url!r}")
        if self.devices < 1:
            problems.append("--devices must be at least 1")
        if self.concurrency < 1:
            problems.append("--concurrency must be at least 1")
        if self.duration is not None and self.duration < 0:
            problems.append("--duration must be 0 (until stopped) or more")
        if self.poll_interval <= 0:
            problems.append("--poll-interval must be more than 0")
        if not 0.0 <= self.not_now_rate <= 1.0:
            problems.append("--not-now-rate must be between 0 and 1")
        if not 0.0 <= self.ddm_fail_rate <= 1.0:
            problems.append("--ddm-fail-rate must be between 0 and 1")
        if self.apns_listen:
            try:
                parse_listen(self.apns_listen)
            except ValueError as exc:
                problems.append(str(exc))
            if not self.apns_tls_dir:
                problems.append("--apns-listen needs --apns-tls-dir")
        if self.ca_file and not Path(self.ca_file).is_file():
            problems.append(f"--ca-file {self.ca_file}: no such file")
        if self.attestation_ca:
            try:
                AttestationCA.load(self.attestation_ca)
            except (OSError, ValueError, TypeError) as exc:
                problems.append(f"--attestation-ca {self.attestation_ca}: {exc}")
        problems += self._setup_assistant_problems()
        if problems:
            raise SimulatorError("; ".join(problems))

    def _setup_assistant_problems(self) -> list[str]:
        problems = []
        if self.setup_assistant and not self.device_ca:
            problems.append(
                "--setup-assistant needs --device-ca DIR (made with --make-device-ca DIR) to "
                "sign MachineInfo"
            )
        if self.device_ca:
            try:
                DeviceCA.load(self.device_ca)
            except (OSError, ValueError, TypeError) as exc:
                problems.append(f"--device-ca {self.device_ca}: {exc}")
        if self.serials is not None:
            if not self.serials or not all(s.strip() for s in self.serials):
                problems.append("--serials must list serial numbers, separated by commas")
            elif len(self.serials) < self.devices:
                problems.append(
                    f"--serials gives {len(self.serials)} serial numbers for {self.devices} devices"
                )
            elif len(set(self.serials)) != len(self.serials):
                problems.append("--serials lists a serial number twice")
        return problems


def run(options: Options, *, stream=None) -> Stats:
    """Run the simulation; the stats (`stats.failed` says whether it went wrong). Raises
    SimulatorError before anything runs when it cannot start."""
    options.url = (options.url or "").rstrip("/")
    options.check()
    # httpx logs every request at INFO: under Django's logging that is a line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stats = Stats()
    fleet_state = _load_state(options)
    restored = fleet_state[: options.devices]
    indexes = range(len(restored), options.devices)
    new = [new_device(index) for index in indexes]
    if options.serials:  # device N takes the Nth serial number (those of the DEP devices)
        for index, state in zip(indexes, new, strict=True):
            state.serial = options.serials[index].strip()
    stats.devices = options.devices
    stats.restored = len(restored)
    if new and not options.enrollment and not options.setup_assistant:
        raise SimulatorError(
            "no enrollment token: give --enrollment TOKEN (the end of the enrollment link)"
        )
    if new and not options.setup_assistant:  # Setup Assistant needs no link
        _preflight(options)
    started = time.monotonic()
    # An ACME fleet (--attestation-ca) makes its EC keys as it enrolls (a few ms each); RSA
    # keys are made beforehand for SCEP, and on the spot should the profile want SCEP anyway.
    keys = [None] * len(new) if options.attestation_ca else make_keys(len(new), options.key_size)
    stats.key_seconds = time.monotonic() - started
    stats.started = time.monotonic()
    new_devices = list(zip(new, keys, strict=True))
    kept = fleet_state[options.devices :]  # beyond --devices: left as they are in the file
    asyncio.run(_simulate(options, stats, restored, new_devices, kept, stream))
    stats.finished = time.monotonic()
    if options.json:
        write_json(stats, Path(options.json))
    return stats


def _load_state(options: Options) -> list[DeviceState]:
    if not options.state:
        return []
    try:
        return [d for d in load_fleet(Path(options.state)) if d.enrolled and not d.erased]
    except ValueError as exc:
        raise SimulatorError(str(exc)) from None


def _preflight(options: Options) -> None:
    """The enrollment page must answer before N keys are made: a wrong URL or token is then
    one clear error, not N failed enrollments. (The page counts no use of the link.)"""
    url = f"{options.url}/enroll/{options.enrollment}/"
    try:
        with httpx.Client(verify=_verify(options), timeout=options.timeout) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise SimulatorError(f"cannot reach the portal at {options.url}: {exc}") from None
    reason = PREFLIGHT_REASONS.get(response.status_code)
    if reason is None and response.status_code >= 400:
        reason = "the enrollment link does not work"
    if reason is not None:
        raise SimulatorError(f"{reason} (HTTP {response.status_code} on {url})")


def _verify(options: Options) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=options.ca_file or None)


def _new_key_pem(bits: int) -> bytes:
    return scep.make_key(bits).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_keys(count: int, bits: int = 2048) -> list:
    """`count` RSA keys, made in worker processes when there are many (RSA generation is CPU
    work that would otherwise stall the event loop in the timed part)."""
    if count < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        return [scep.make_key(bits) for _ in range(count)]
    with ProcessPoolExecutor() as pool:
        ders = list(pool.map(_new_key_pem, [bits] * count, chunksize=8))
    return [serialization.load_der_private_key(der, None) for der in ders]


async def _simulate(options: Options, stats: Stats, restored, new, kept, stream) -> None:
    fleet = Fleet(
        url=options.url,
        token=options.enrollment,
        stats=stats,
        ca_file=options.ca_file,
        client_cert=options.client_cert,
        not_now_rate=options.not_now_rate,
        timeout=options.timeout,
        concurrency=options.concurrency,
        attestation_ca=_attestation_ca(options),
        setup_assistant=options.setup_assistant,
        device_ca=DeviceCA.load(options.device_ca) if options.device_ca else None,
        ddm_fail_rate=options.ddm_fail_rate,
    )
    devices = [SimulatedDevice(state, fleet) for state in restored]
    devices += [SimulatedDevice(state, fleet, key) for state, key in new]
    by_token = {device.state.token.lower(): device for device in devices}
    listener = await _start_listener(options, stats, by_token)
    stop = asyncio.Event()
    restore_signals = _on_signals(stop)
    progress = Progress(stats, stream) if options.progress else None
    if progress is not None:
        progress.start()
    limit = asyncio.Semaphore(options.concurrency)
    try:
        first = [asyncio.ensure_future(_first_round(d, limit, stats)) for d in devices]
        await _gather_until(first, stop)
        _save(options, devices, kept)
        if options.duration is not None and not stop.is_set():
            if progress is not None:
                progress.phase = "enrolled, polling"
            loops = [asyncio.ensure_future(_keep_polling(d, limit, options, stop)) for d in devices]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), options.duration or None)
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
    finally:
        if progress is not None:
            await progress.stop()
        restore_signals()
        if listener is not None:
            await listener.close()
        await fleet.close()
        stats.undelivered_reports = sum(d.pending_report is not None for d in devices)
        _save(options, devices, kept)


def _attestation_ca(options: Options) -> AttestationCA | None:
    return AttestationCA.load(options.attestation_ca) if options.attestation_ca else None


async def _gather_until(tasks: list[asyncio.Future], stop: asyncio.Event) -> None:
    """Wait for the first round; a signal cancels what is still in flight."""
    while not all(task.done() for task in tasks):
        if stop.is_set():
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return
        await asyncio.wait([t for t in tasks if not t.done()], timeout=0.2)


async def _first_round(device: SimulatedDevice, limit: asyncio.Semaphore, stats: Stats) -> None:
    async with limit:
        if not device.state.enrolled:
            try:
                await device.enroll()
            except ExchangeFailed:
                stats.enroll_failed += 1
                return
            stats.enrolled += 1
        await device.poll()


async def _keep_polling(
    device: SimulatedDevice, limit: asyncio.Semaphore, options: Options, stop: asyncio.Event
) -> None:
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set() and device.state.enrolled and not device.state.erased:
            if not device.wake.is_set():
                interval = device.retry_delay(options.poll_interval) * random.uniform(0.8, 1.2)
                waking = asyncio.ensure_future(device.wake.wait())
                await asyncio.wait(
                    [waking, stopping], timeout=interval, return_when="FIRST_COMPLETED"
                )
                waking.cancel()
            if stop.is_set():
                return
            if device.wake.is_set():
                device.stats.wakeups += 1
            device.wake.clear()
            async with limit:
                await device.poll()
    finally:
        stopping.cancel()


def waker(stats: Stats, by_token: dict) -> Callable[[str, str], bool]:
    """The listener's answer to a push: whether the token is one of ours (waking it)."""

    def wake(token: str, push_magic: str) -> bool:
        # A device's token is APNs' from the start: a push that comes before the device has
        # read the answer to its TokenUpdate (the portal pushes the initial inventory at once)
        # is delivered all the same; only an erased device's token is no longer valid.
        device = by_token.get(token)
        if device is None or device.state.erased:
            stats.unknown_pushes += 1
            return False
        stats.pushes += 1
        if push_magic == device.state.push_magic:  # a device ignores someone else's push
            device.wake.set()
        return True

    return wake


async def _start_listener(options: Options, stats: Stats, by_token: dict) -> APNsListener | None:
    if not options.apns_listen:
        return None
    listener = APNsListener(waker(stats, by_token))
    host, port = parse_listen(options.apns_listen)
    try:
        await listener.start(host, port, Path(options.apns_tls_dir))
    except OSError as exc:
        raise SimulatorError(f"--apns-listen {options.apns_listen}: {exc}") from None
    return listener


def _on_signals(stop: asyncio.Event):
    """SIGINT and SIGTERM end the run (the summary is still printed); returns the undo."""
    loop = asyncio.get_running_loop()
    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, stop.set)
            installed.append(number)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (a test), or no signals here

    def restore() -> None:
        for number in installed:
            loop.remove_signal_handler(number)

    return restore


def _save(options: Options, devices: list[SimulatedDevice], kept: list[DeviceState]) -> None:
    if options.state:
        save_fleet(Path(options.state), [device.state for device in devices] + kept)


def print_summary(stats: Stats, stream=None) -> None:
    print(summary_text(stats), file=stream or sys.stdout)
