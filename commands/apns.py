"""The APNs client: wake devices with `{"mdm": "<PushMagic>"}` pushes over HTTP/2.

`push_devices(ids, kind)` is the one entry point (Celery tasks, `mdm_push`). It works in three
steps so that the database is never touched from the event loop:

1. load (sync): the active push certificate and its TLS context (`commands.apns_config`) and,
   in one query, the devices' tokens;
2. send (async): every push over ONE HTTP/2 connection with many concurrent streams, the push
   certificate as the TLS client certificate (`_Batch`, here);
3. record (sync, `commands.push_log`): one PushAttempt per device in one bulk INSERT, one
   UPDATE each for the tokens APNs declared invalid and for `last_push_at`, the alerts.

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
Devices that cannot be pushed by the rule the sweeps select with (`devices.reachability`: not
enrolled, no TokenUpdate yet, token known invalid, no token or PushMagic) are skipped: listed in
the summary with the reason, no PushAttempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from certs.pushcert import active_push_certificate
from devices.models import Device
from devices.reachability import with_reasons
from mdm_portal.audit import audit

from .apns_config import PushConfig, certificate_problem, push_config
from .h2client import ConnectionLost, H2Client, Reply
from .models import PushAttempt
from .push_log import (
    PushResult,
    PushSummary,
    PushTarget,
    alert_unusable_certificate,
    chunks,
    record,
    summarize,
    update_alerts,
)

log = logging.getLogger("mdm.apns")

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
# What a broken connection raises besides ConnectionLost (the transport maps most to it).
CONNECTION_ERRORS = (ConnectionLost, ssl.SSLError, OSError, TimeoutError)

# 400 answers about the topic rather than the device: every push of the batch would get them.
TOPIC_REASONS = frozenset({"BadTopic", "TopicDisallowed", "MissingTopic"})


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
    problem = certificate_problem(certificate, now)
    if problem is None:
        try:
            config = push_config(certificate)
        except (ssl.SSLError, OSError, TypeError, ValueError) as exc:
            problem = f"push certificate unusable: {exc}"
    if problem is not None:
        alert_unusable_certificate(certificate, problem)
        results = {t.device_id: PushResult(0, problem) for t in targets}
        record(targets, results, kind, now)
        summary.reason = problem
        summarize(summary, targets, results)
        log.warning("no push sent to %d device(s): %s", len(targets), problem)
        return summary

    batch = _Batch(config, targets)
    asyncio.run(batch.run())  # plain data in, results out: no database access inside
    record(targets, batch.results, kind, now)
    summarize(summary, targets, batch.results)
    summary.reason = batch.stop_reason
    update_alerts(
        certificate,
        summary,
        refusal=batch.refusal,
        url=config.base_url,
        last_error=batch.last_error,
    )
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


def push_now(devices: QuerySet, *, actor, address: str | None = None) -> PushSummary:
    """A push, now, for devices someone chose (the API, the UI); audited with what it did."""
    ids = list(devices.values_list("id", flat=True))
    summary = push_devices(ids, PushAttempt.Kind.MANUAL)
    audit(
        "device.pushed",
        actor=actor,
        target=f"{len(ids)} device(s)",
        address=address,
        ok=summary.ok,
        sent=summary.sent,
        skipped=summary.skipped,
        reason=summary.reason,
    )
    return summary


# -- loading (sync) ----------------------------------------------------------------------------


def _load_targets(device_ids: Iterable[int]) -> tuple[list[PushTarget], list[tuple[str, int, str]]]:
    """The devices' tokens in one query; the devices that cannot be pushed, with why (the rule
    of `devices.reachability`, which the sweeps select by too)."""
    ids = list(dict.fromkeys(device_ids))  # each device once
    targets: list[PushTarget] = []
    skipped: list[tuple[str, int, str]] = []
    for chunk in chunks(ids):
        devices = Device.objects.filter(pk__in=chunk).order_by("pk")
        for row, why in with_reasons(devices, "id", "udid", "push_token", "push_magic"):
            if why:
                skipped.append((row["udid"], 0, f"skipped: {why}"))
            else:
                targets.append(
                    PushTarget(row["id"], row["udid"], row["push_token"], row["push_magic"])
                )
    return targets, skipped


# -- sending (async) ---------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """A transport error: the connection (not this push) failed."""


class _Batch:
    """Sends one batch of pushes; `results` holds every answer, by device id."""

    def __init__(self, config: PushConfig, targets: list[PushTarget]):
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
