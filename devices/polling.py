"""Who is polling the server URL: the device row, locked, in one statement.

Every poll must prove that the certificate is not revoked, that it is bound to the device the
message names, and that this device is managed; and the device row is locked for the exchange.
One statement reads all of it. Only the success path is decided here: anything else goes to
the same checks every other device request runs (DeviceIdentity.require_unrevoked,
devices.checkin.bound_device), which raise the refusal with its reason.
"""

from functools import cache

from django.db import connection

from certs.identity import DeviceIdentity, IdentityError
from certs.models import IssuedCertificate
from mdm_portal import hot_sql

from .checkin import bound_device
from .models import CertificateBinding, Device
from .protocol import NotManaged, ProtocolError

# The columns the loop reads and writes; the rest of the row loads only if a hook needs it.
POLL_FIELDS = (
    "id",
    "udid",
    "state",
    "awaiting_idle_after_not_now",
    "last_seen_at",
    "inactive_since",
)


@cache
def _lock_sql(vendor: str) -> str:
    lock = " FOR UPDATE OF d" if vendor == "postgresql" else ""  # SQLite: one writer anyway
    columns = ", ".join(f"d.{name}" for name in POLL_FIELDS)
    return (
        f"SELECT {columns}, b.device_id, c.id, c.revoked_at "  # noqa: S608 - our table names
        f"FROM {Device._meta.db_table} d "
        f"LEFT JOIN {CertificateBinding._meta.db_table} b ON b.certificate_id = %s "
        f"LEFT JOIN {IssuedCertificate._meta.db_table} c ON c.id = %s "
        f"WHERE d.udid = %s{lock}"
    )


def polling_device(identity: DeviceIdentity, udid: str) -> Device:
    """The managed device `udid`, locked, if `identity` is unrevoked and bound to it.

    Call inside the exchange's transaction. Returns an instance with POLL_FIELDS loaded (the
    others load on first use). Raises ProtocolError (403) or NotManaged (401) otherwise.
    """
    rows = hot_sql.fetch(_lock_sql(connection.vendor), [identity.record_id] * 2 + [udid])
    if rows:
        *values, bound_to, record_id, revoked_at = rows[0]
        device_pk, state = values[0], values[2]
        if (
            record_id is not None
            and revoked_at is None
            and bound_to == device_pk
            and state == Device.State.ENROLLED
        ):
            return hot_sql.instance(Device, POLL_FIELDS, values)
    return _refusal(identity, udid)


def _refusal(identity: DeviceIdentity, udid: str) -> Device:
    try:
        identity.require_unrevoked()
    except IdentityError as exc:
        raise ProtocolError(403, f"device identity refused: {exc}") from None
    device = bound_device(identity, udid, lock=True)
    if not device.is_managed:
        raise NotManaged(f"{udid} is not managed (no TokenUpdate since Authenticate)")
    return device  # it changed between the two reads: it is fine now
