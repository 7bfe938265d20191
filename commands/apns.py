"""The APNs client: wake devices with `{"mdm": "<PushMagic>"}` pushes over HTTP/2.

`push_devices(ids, kind)` is the one entry point (Celery tasks, `mdm_push`). It works in three
steps so that the database is never touched from the event loop:

1. load (sync): the active push certificate and, in one query, the devices' tokens;
2. send (async): every push over ONE HTTP/2 connection with many concurrent streams, the push
   certificate as the TLS client certificate (`_Batch`);
3. record (sync): one PushAttempt per device in one bulk INSERT, and one UPDATE each for the
   tokens APNs declared invalid and for `last_push_at`.

What APNs answers decides what happens next (Apple, "Handling notification responses from
APNs"):

- 200: delivered to APNs; the `apns-id` header is kept.
- 410 (Unregistered, ExpiredToken) and 400 BadDeviceToken: the token is dead. The device gets
  `token_invalid_at` and is skipped until its next TokenUpdate (the seed's "Using the Feedback
  Service": stop pushing to it).
- 429 and 5xx: retried with exponential backoff and jitter, at most MDM_APNS_RETRIES times.
  One PushAttempt per device records the final answer; its reason says how many retries it took.
- 403 (BadCertificate, BadCertificateEnvironment, ...) and the topic-level 400s (BadTopic,
  TopicDisallowed, MissingTopic): APNs refuses every push of this certificate, so the batch
  stops: what is not sent yet is recorded as not attempted, and a critical alert
  `apns:certificate` tells the admin what to do. A batch with a delivered push resolves the
  `apns:*` alerts.
- any other 4xx: recorded, the batch goes on.
- a GOAWAY or a broken connection: a new connection (new client) resends what was not
  answered, for as long as connections make progress (bounded).

PushAttempt.status is the HTTP status, 0 when the push was not attempted (or never answered).
Devices that cannot be pushed (not enrolled, no TokenUpdate yet, token known invalid) are
skipped: listed in the summary with the reason, no PushAttempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from certs.models import PushCertificate
from certs.pushcert import active_push_certificate
from devices.models import Device
from mdm_portal.alerts import raise_alert, resolve_alerts

from .h2client import ConnectionLost, H2Client, Reply
from .models import PushAttempt

log = logging.getLogger("mdm.apns")

PRODUCTION_URL = "https://api.push.apple.com"
DEVELOPMENT_URL = "https://api.sandbox.push.apple.com"

# Retries of 429/5xx: 0.5 s, 1 s, 2 s ... (capped), each with full jitter so that thousands of
# streams told "later" at the same moment do not come back at the same moment.
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
# Reconnects after a GOAWAY or a broken connection: as many as needed while each connection
# gets answers, but only this many in a row that get none (APNs unreachable, TLS refused).
RECONNECTS_WITHOUT_PROGRESS = 3
MAX_CONNECTIONS_PER_BATCH = 50
RECONNECT_PAUSE_SECONDS = 0.2
TIMEOUT_SECONDS = 30.0
# Device ids per SQL `IN (...)`: one statement for any batch the Celery tasks claim (20,000),
# below SQLite's limit of bound variables.
IN_CHUNK = 20_000

# What a broken connection raises besides ConnectionLost (the transport maps most to it).
CONNECTION_ERRORS = (ConnectionLost, ssl.SSLError, OSError, TimeoutError)

HEX_TOKEN = re.compile(r"[0-9a-fA-F]+")

# Answers that say the token is dead (besides any 410).
INVALID_TOKEN_REASONS = frozenset({"BadDeviceToken"})
# 400 answers about the topic rather than the device: every push of the batch would get them.
TOPIC_REASONS = frozenset({"BadTopic", "TopicDisallowed", "MissingTopic"})

# What the admin should do, by APNs reason (the alert's message).
CERTIFICATE_ADVICE = {
    "BadCertificate": (
        "APNs does not accept the push certificate (revoked, or not an APNs certificate). "
        "Renew it at https://identity.apple.com/pushcert with the same Apple ID and import the "
        "new one with `mdm_pushcert import`."
    ),
    "BadCertificateEnvironment": (
        "The push certificate is for the other APNs environment (development vs production). "
        "MDM push certificates from identity.apple.com are production certificates: import "
        "one, or check MDM_APNS_URL."
    ),
    "BadTopic": (
        "APNs refuses the topic of the push certificate. Import the MDM push certificate "
        "whose UID is the topic the devices enrolled with (`mdm_pushcert show`)."
    ),
    "TopicDisallowed": (
        "APNs does not allow pushes to this topic. Check that the certificate is an MDM "
        "push certificate (topic com.apple.mgmt.*) and renew it if needed."
    ),
}
DEFAULT_ADVICE = (
    "Check the push certificate (`mdm_pushcert show`), renew it at "
    "https://identity.apple.com/pushcert if needed, and import it with `mdm_pushcert import`."
)


# -- results -----------------------------------------------------------------------------------


@dataclass
class PushSummary:
    """What one call of `push_devices` did.

    sent: pushes APNs answered; ok: answered 200; invalid_tokens: answered 410/BadDeviceToken;
    failed: answered with another error (after retries); not_attempted: never sent or never
    answered (status 0: no usable certificate, batch stopped, APNs unreachable); skipped:
    devices that cannot be pushed (not enrolled, no TokenUpdate yet, token known invalid) and
    were left alone, no PushAttempt. `reason` says why the batch stopped or was not attempted.
    `results` is one (udid, status, reason) per device asked for, for `mdm_push` to print.
    """

    sent: int = 0
    ok: int = 0
    invalid_tokens: int = 0
    failed: int = 0
    not_attempted: int = 0
    skipped: int = 0
    reason: str = ""
    results: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PushTarget:
    """One device to push: only plain data crosses into the event loop."""

    device_id: int
    udid: str
    token: str
    magic: str


@dataclass
class PushResult:
    """What APNs answered to one device's push, after any retries."""

    status: int  # HTTP status; 0 when not sent or not answered
    reason: str = ""
    apns_id: str = ""
    retries: int = 0

    @property
    def invalid_token(self) -> bool:
        return self.status == 410 or (self.status == 400 and self.reason in INVALID_TOKEN_REASONS)

    def describe(self) -> str:
        """The reason as stored: APNs' reason, and the retries it took."""
        if not self.retries:
            return self.reason
        retried = f"after {self.retries} {'retry' if self.retries == 1 else 'retries'}"
        return f"{self.reason} ({retried})" if self.reason else retried


@dataclass(frozen=True)
class _Config:
    """Everything the async side needs, read from settings and the certificate beforehand."""

    base_url: str
    topic: str
    ssl_context: ssl.SSLContext
    concurrency: int
    retries: int
    expiration: int  # unix time


# -- the entry point ---------------------------------------------------------------------------


def push_devices(device_ids: Iterable[int], kind: str) -> PushSummary:
    """Push every pushable device of `device_ids`; record what APNs answered for each."""
    now = timezone.now()
    targets, skipped = _load_targets(device_ids)
    summary = PushSummary(skipped=len(skipped))
    summary.results.extend(skipped)
    if not targets:
        return summary

    certificate = active_push_certificate()
    problem = _certificate_problem(certificate, now)
    if problem is None:
        try:
            config = _config(certificate)
        except (ssl.SSLError, OSError, TypeError, ValueError) as exc:
            problem = f"push certificate unusable: {exc}"
    if problem is not None:
        _alert_unusable_certificate(certificate, problem)
        results = {t.device_id: PushResult(0, problem) for t in targets}
        _record(targets, results, kind, now)
        summary.reason = problem
        _summarize(summary, targets, results)
        log.warning("no push sent to %d device(s): %s", len(targets), problem)
        return summary

    batch = _Batch(config, targets)
    asyncio.run(batch.run())  # plain data in, results out: no database access inside
    _record(targets, batch.results, kind, now)
    _summarize(summary, targets, batch.results)
    summary.reason = batch.stop_reason
    _update_alerts(batch, certificate, summary)
    log.info(
        "pushed %d device(s) (%s) over %d connection(s): %d ok, %d invalid token(s), "
        "%d failed, %d not attempted%s",
        len(targets),
        kind,
        batch.connections,
        summary.ok,
        summary.invalid_tokens,
        summary.failed,
        summary.not_attempted,
        f": {summary.reason}" if summary.reason else "",
    )
    return summary


# -- loading (sync) ----------------------------------------------------------------------------


def _chunks(ids: list[int], size: int = IN_CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _load_targets(device_ids: Iterable[int]) -> tuple[list[PushTarget], list[tuple[str, int, str]]]:
    """The devices' tokens in one query; the devices that cannot be pushed, with why."""
    ids = list(dict.fromkeys(device_ids))  # each device once
    targets: list[PushTarget] = []
    skipped: list[tuple[str, int, str]] = []
    columns = ("id", "udid", "state", "enrolled_at", "token_invalid_at", "push_token", "push_magic")
    for chunk in _chunks(ids):
        for row in Device.objects.filter(pk__in=chunk).order_by("pk").values_list(*columns):
            pk, udid, state, enrolled_at, token_invalid_at, token, magic = row
            why = _not_pushable(state, enrolled_at, token_invalid_at, token, magic)
            if why:
                skipped.append((udid, 0, why))
            else:
                targets.append(PushTarget(pk, udid, token, magic))
    return targets, skipped


def _not_pushable(state, enrolled_at, token_invalid_at, token, magic) -> str:
    # The protocol: push only after the first TokenUpdate, and never to a token APNs
    # declared invalid (until the device sends a new one).
    if state != Device.State.ENROLLED:
        return f"skipped: device is {state}"
    if enrolled_at is None:
        return "skipped: no TokenUpdate yet"
    if token_invalid_at is not None:
        return f"skipped: push token invalid since {token_invalid_at:%Y-%m-%d %H:%M} UTC"
    if not token or not magic:
        return "skipped: no push token or PushMagic"
    if not HEX_TOKEN.fullmatch(token):
        return "skipped: push token is not hexadecimal"  # it goes into the URL path
    return ""


def _certificate_problem(certificate: PushCertificate | None, now: dt.datetime) -> str | None:
    if certificate is None:
        return "no push certificate"
    if certificate.not_after <= now:
        return f"push certificate expired on {certificate.not_after:%Y-%m-%d %H:%M} UTC"
    return None


def apns_base_url(certificate: PushCertificate) -> str:
    """MDM_APNS_URL (a stand-in), else Apple's production or development host on port 443."""
    if settings.MDM_APNS_URL:
        return settings.MDM_APNS_URL.rstrip("/")
    return DEVELOPMENT_URL if certificate.development else PRODUCTION_URL


def _config(certificate: PushCertificate) -> _Config:
    return _Config(
        base_url=apns_base_url(certificate),
        topic=certificate.topic,
        ssl_context=client_ssl_context(certificate),
        concurrency=max(1, settings.MDM_APNS_CONCURRENCY),
        retries=max(0, settings.MDM_APNS_RETRIES),
        expiration=int(time.time()) + settings.MDM_APNS_EXPIRATION_SECONDS,
    )


def client_ssl_context(certificate: PushCertificate) -> ssl.SSLContext:
    """TLS for APNs: the push certificate as client certificate; trust MDM_APNS_CA_FILE if set
    (a stand-in's CA), else the system store."""
    context = ssl.create_default_context(cafile=settings.MDM_APNS_CA_FILE or None)
    _load_client_certificate(
        context, certificate.certificate_pem.encode(), bytes(certificate.private_key_pem)
    )
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`load_cert_chain` only reads files. The decrypted key goes to an anonymous in-memory
    file (Linux memfd, never on disk) or else to a 0600 file in a private temporary folder,
    deleted as soon as it is loaded."""
    pem = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and Path("/proc/self/fd").is_dir():
        fd = memfd_create("apns-push-certificate", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mdm-apns-") as folder:  # mode 0700
        path = Path(folder, "push.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, pem)
        finally:
            os.close(fd)
        try:
            context.load_cert_chain(path)
        finally:
            path.unlink()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- sending (async) ---------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """A transport error: the connection (not this push) failed."""


class _Batch:
    """Sends one batch of pushes; `results` holds every answer, by device id."""

    def __init__(self, config: _Config, targets: list[PushTarget]):
        self.config = config
        self.targets = targets
        self.results: dict[int, PushResult] = {}
        self.stop_reason = ""  # set when APNs refuses the certificate or the topic
        self.refusal: PushResult | None = None
        self.connections = 0
        self.last_error = ""
        self.headers = {
            "apns-topic": config.topic,
            "apns-push-type": "mdm",
            "apns-priority": "10",
            "apns-expiration": str(config.expiration),
            "content-type": "application/json",
        }

    async def run(self) -> None:
        pending = self.targets
        fruitless = 0
        while pending and not self.stop_reason and self.connections < MAX_CONNECTIONS_PER_BATCH:
            answered_before = len(self.results)
            await self._send_over_one_connection(pending)
            pending = [t for t in pending if t.device_id not in self.results]
            if not pending or self.stop_reason:
                break
            # Reconnect: at once after a GOAWAY on a connection that worked; after a pause,
            # and only a few times in a row, when a connection got no answer at all.
            fruitless = 0 if len(self.results) > answered_before else fruitless + 1
            if fruitless > RECONNECTS_WITHOUT_PROGRESS:
                break
            if fruitless:
                await asyncio.sleep(RECONNECT_PAUSE_SECONDS * 2 ** (fruitless - 1))
        self._close_unanswered(pending)

    def _close_unanswered(self, pending: list[PushTarget]) -> None:
        if self.stop_reason:
            why = f"not sent: {self.stop_reason}"
        else:
            why = f"no answer from APNs: {self.last_error or 'connection lost'}"[:200]
        for target in pending:
            self.results.setdefault(target.device_id, PushResult(0, why))

    async def _send_over_one_connection(self, targets: list[PushTarget]) -> None:
        """All pushes as concurrent streams of one HTTP/2 connection. A transport error ends
        the round: pushes not answered yet wait for the next connection instead of each
        opening its own."""
        self.connections += 1
        broken = asyncio.Event()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        try:
            async with H2Client(self.config.base_url, self.config.ssl_context, TIMEOUT_SECONDS) as (
                client
            ):
                await asyncio.gather(
                    *(self._push(client, target, semaphore, broken) for target in targets)
                )
        except CONNECTION_ERRORS as exc:  # could not connect at all
            self.last_error = f"{type(exc).__name__}: {exc}"

    async def _push(
        self,
        client: H2Client,
        target: PushTarget,
        semaphore: asyncio.Semaphore,
        broken: asyncio.Event,
    ) -> None:
        retries = 0
        while True:
            async with semaphore:
                if self.stop_reason or broken.is_set():
                    return  # left for the next connection, or recorded as not sent
                try:
                    response = await self._post(client, target)
                except _ConnectionLost as exc:
                    self.last_error = str(exc)
                    broken.set()
                    return
            result = _result_of(response, retries)
            if _retryable(result.status) and retries < self.config.retries:
                retries += 1
                # Sleep without holding a stream slot: other devices keep going meanwhile.
                await asyncio.sleep(_backoff(retries, response))
                if not (self.stop_reason or broken.is_set()):
                    continue
                # The batch stopped or the connection broke while waiting: keep the last
                # answer rather than sending again later.
            self.results[target.device_id] = result
            if _refuses_certificate(result):
                self._stop(result)
            return

    async def _post(self, client: H2Client, target: PushTarget) -> Reply:
        body = json.dumps({"mdm": target.magic}, separators=(",", ":")).encode()
        try:
            return await client.post(f"/3/device/{target.token}", body, self.headers)
        except CONNECTION_ERRORS as exc:  # GOAWAY, reset, TLS refused, timeouts ...
            raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    def _stop(self, result: PushResult) -> None:
        if not self.stop_reason:
            self.refusal = result
            self.stop_reason = (
                f"APNs refused the push certificate ({result.status} {result.reason})"
            )


def _result_of(response: Reply, retries: int) -> PushResult:
    reason = ""
    if response.status != 200:
        reason = _reason(response)
    return PushResult(
        status=response.status,
        reason=reason,
        apns_id=response.headers.get("apns-id", "")[:64],
        retries=retries,
    )


def _reason(response: Reply) -> str:
    """APNs' `{"reason": "..."}`, or the start of whatever body came back."""
    try:
        reason = json.loads(response.body).get("reason", "")
    except (ValueError, AttributeError):
        reason = response.body[:100].decode("utf-8", "replace")
    return str(reason or f"HTTP {response.status}")[:200]


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _refuses_certificate(result: PushResult) -> bool:
    return result.status == 403 or (result.status == 400 and result.reason in TOPIC_REASONS)


def _backoff(retry: int, response: Reply | None = None) -> float:
    """Exponential backoff with full jitter; a Retry-After in seconds is honoured (capped)."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (retry - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = max(delay, min(RETRY_MAX_SECONDS, float(retry_after)))
    return delay


# -- recording (sync) --------------------------------------------------------------------------


def _record(
    targets: list[PushTarget], results: dict[int, PushResult], kind: str, now: dt.datetime
) -> None:
    """One PushAttempt per device in one executemany; invalid tokens and last_push_at in one
    UPDATE each.

    The attempts go in as plain rows: building 10,000 model instances for bulk_create cost
    more than sending the pushes.
    """
    created_at = connection.ops.adapt_datetimefield_value(now)
    rows = []
    invalid: list[int] = []
    delivered: list[int] = []
    for target in targets:
        result = results[target.device_id]
        rows.append(
            (
                target.device_id,
                kind,
                created_at,
                result.status,
                result.apns_id,
                result.describe()[:200],
            )
        )
        if result.invalid_token:
            invalid.append(target.device_id)
        elif result.status == 200:
            delivered.append(target.device_id)
    with transaction.atomic():
        _insert_attempts(rows)
        _set_on_devices(invalid, "token_invalid_at", now)
        # Only pushes APNs accepted count as pushed: a failed one is due again at the next
        # sweep rather than a keep-alive period later.
        _set_on_devices(delivered, "last_push_at", now)


def _set_on_devices(device_ids: list[int], column: str, value: dt.datetime) -> None:
    """One UPDATE: `= ANY(array)` on PostgreSQL (10,000 bound values cost more to parse than
    to apply), chunks of IN (...) elsewhere."""
    if not device_ids:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Device._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE id = ANY(%s)",  # noqa: S608
                [value, device_ids],
            )
        return
    for chunk in _chunks(device_ids):
        Device.objects.filter(pk__in=chunk).update(**{column: value})


def _insert_attempts(rows: list[tuple]) -> None:
    """All attempts in one statement: unnest() of arrays on PostgreSQL, executemany elsewhere."""
    table = connection.ops.quote_name(PushAttempt._meta.db_table)
    columns = "(device_id, kind, created_at, status, apns_id, reason)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and rows:
            device_ids, kinds, created, statuses, apns_ids, reasons = zip(*rows, strict=True)
            cursor.execute(
                f"INSERT INTO {table} {columns} "  # noqa: S608 - our table, values bound
                "SELECT d, %s, %s, s, a, r FROM unnest(%s::bigint[], %s::smallint[], "
                "%s::varchar[], %s::varchar[]) AS t(d, s, a, r)",
                [
                    kinds[0],
                    created[0],
                    list(device_ids),
                    list(statuses),
                    list(apns_ids),
                    list(reasons),
                ],
            )
            return
        cursor.executemany(
            f"INSERT INTO {table} {columns} VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
            rows,
        )


def _summarize(
    summary: PushSummary, targets: list[PushTarget], results: dict[int, PushResult]
) -> None:
    for target in targets:
        result = results[target.device_id]
        summary.results.append((target.udid, result.status, result.describe()))
        if result.status == 0:
            summary.not_attempted += 1
            continue
        summary.sent += 1
        if result.status == 200:
            summary.ok += 1
        elif result.invalid_token:
            summary.invalid_tokens += 1
        else:
            summary.failed += 1


# -- alerts --------------------------------------------------------------------------------------


def _alert_unusable_certificate(certificate: PushCertificate | None, problem: str) -> None:
    if certificate is None:
        message = (
            "Pushes are not sent: there is no push certificate. Create one with "
            "`mdm_pushcert csr` at https://identity.apple.com/pushcert and import it with "
            "`mdm_pushcert import`."
        )
        raise_alert("apns:certificate", message, severity="warning", reason=problem)
        return
    message = (
        f"Pushes are not sent: {problem} (topic {certificate.topic}). Renew it at "
        "https://identity.apple.com/pushcert with the same Apple ID (same topic) and import "
        "it with `mdm_pushcert import`."
    )
    raise_alert("apns:certificate", message, severity="critical", reason=problem)


def _update_alerts(batch: _Batch, certificate: PushCertificate, summary: PushSummary) -> None:
    if batch.refusal is not None:
        refusal = batch.refusal
        advice = CERTIFICATE_ADVICE.get(refusal.reason, DEFAULT_ADVICE)
        raise_alert(
            "apns:certificate",
            f"APNs refused the push certificate for {certificate.topic} with {refusal.status} "
            f"{refusal.reason}: no device can be woken. {advice}",
            severity="critical",
            status=refusal.status,
            reason=refusal.reason,
            topic=certificate.topic,
            url=batch.config.base_url,
            not_sent=summary.not_attempted,
        )
    elif summary.ok:
        resolve_alerts("apns:")
    elif summary.sent == 0 and batch.last_error:
        raise_alert(
            "apns:connection",
            f"Could not reach APNs at {batch.config.base_url}: {batch.last_error}. Check "
            "outbound HTTPS to APNs (port 443) and that APNs accepts the push certificate "
            f"for {certificate.topic} (`mdm_pushcert show`).",
            severity="warning",
            error=batch.last_error[:500],
            url=batch.config.base_url,
        )
