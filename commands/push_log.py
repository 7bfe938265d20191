"""What a batch of pushes works on and leaves behind: the devices' PushAttempts, their
`token_invalid_at` and `last_push_at`, the summary `push_devices` returns, and the `apns:*`
alerts.

Everything here is sync and runs after the batch (`commands.apns` sends it): one PushAttempt
per device in one statement, one UPDATE per device column, whatever the batch size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction

from certs.models import PushCertificate
from devices.models import Device
from mdm_portal.alerts import raise_alert, resolve_alerts

from .models import PushAttempt
from .signals import pushes_failed

# Device ids per SQL `IN (...)`: one statement for any batch the Celery tasks claim (20,000),
# below SQLite's limit of bound variables.
IN_CHUNK = 20_000

# Answers that say the token is dead (besides any 410).
INVALID_TOKEN_REASONS = frozenset({"BadDeviceToken"})

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
    devices that cannot be pushed (`devices.reachability`) and were left alone, no PushAttempt.
    `reason` says why the batch stopped or was not attempted. `results` is one (udid, status,
    reason) per device asked for, for `mdm_push` to print.
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


def chunks(ids: list[int], size: int = IN_CHUNK) -> Iterator[list[int]]:
    """`ids` in slices small enough for one `IN (...)` each."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# -- recording --------------------------------------------------------------------------------


def record(
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
    failures: list[tuple[str, int, str]] = []
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
        if result.status == 200:
            delivered.append(target.device_id)
            continue
        failures.append((target.udid, result.status, result.describe()))
        if result.invalid_token:
            invalid.append(target.device_id)
    with transaction.atomic():
        _insert_attempts(rows)
        _set_on_devices(invalid, "token_invalid_at", now)
        # Only pushes APNs accepted count as pushed: a failed one is due again at the next
        # sweep rather than a keep-alive period later.
        _set_on_devices(delivered, "last_push_at", now)
        if failures:
            pushes_failed.send(PushAttempt, failures=failures, kind=kind, at=now)


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
    for chunk in chunks(device_ids):
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


def summarize(
    summary: PushSummary, targets: list[PushTarget], results: dict[int, PushResult]
) -> None:
    """Count the batch's answers into `summary` and list each device's for `mdm_push`."""
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


# -- alerts ------------------------------------------------------------------------------------


def alert_unusable_certificate(certificate: PushCertificate | None, problem: str) -> None:
    """No push could be sent (`problem`): tell the admin how to get a usable certificate."""
    if certificate is None:
        message = (
            "Pushes are not sent: there is no push certificate. Create one with "
            "`mdm_pushcert csr` at https://identity.apple.com/pushcert and import it with "
            "`mdm_pushcert import`."
        )
        raise_alert("apns:certificate", message, severity="warning", reason=problem)
        return
    if certificate.demo:  # nothing to renew at Apple: the demo lacks its stand-in
        message = f"Pushes are not sent: {problem}."
        raise_alert("apns:certificate", message, severity="warning", reason=problem)
        return
    message = (
        f"Pushes are not sent: {problem} (topic {certificate.topic}). Renew it at "
        "https://identity.apple.com/pushcert with the same Apple ID (same topic) and import "
        "it with `mdm_pushcert import`."
    )
    raise_alert("apns:certificate", message, severity="critical", reason=problem)


def update_alerts(
    certificate: PushCertificate,
    summary: PushSummary,
    *,
    refusal: PushResult | None,
    url: str,
    last_error: str,
) -> None:
    """After a batch: a refused certificate raises `apns:certificate`, a delivered push resolves
    the `apns:*` alerts, and a batch that reached nobody raises `apns:connection`."""
    if refusal is not None:
        advice = CERTIFICATE_ADVICE.get(refusal.reason, DEFAULT_ADVICE)
        raise_alert(
            "apns:certificate",
            f"APNs refused the push certificate for {certificate.topic} with {refusal.status} "
            f"{refusal.reason}: no device can be woken. {advice}",
            severity="critical",
            status=refusal.status,
            reason=refusal.reason,
            topic=certificate.topic,
            url=url,
            not_sent=summary.not_attempted,
        )
    elif summary.ok:
        resolve_alerts("apns:")
    elif summary.sent == 0 and last_error:
        raise_alert(
            "apns:connection",
            f"Could not reach APNs at {url}: {last_error}. Check outbound HTTPS to APNs "
            "(port 443) and that APNs accepts the push certificate for "
            f"{certificate.topic} (`mdm_pushcert show`).",
            severity="warning",
            error=last_error[:500],
            url=url,
        )
