"""The demo push certificate: what lets the portal run a whole demo without Apple.

`mdm_pushcert demo` and `scripts/quickstart.sh --demo` call `ensure_demo_push_certificate`.
It makes an RSA key and a self-signed certificate shaped like Apple's MDM push certificate
(subject `UID=com.apple.mgmt.External.<uuid4>`, client authentication, Apple's development
marker), then stores it through the ordinary import path (`pushcert._import`), so it is checked,
audited and its key encrypted at rest like any imported one. The subject's organization
(`pushcert.DEMO_ORGANIZATION`) marks it, and the import records `demo=True`: pushes with it go
only to MDM_APNS_URL, never to Apple's hosts (commands/apns_config.py).

It never replaces a certificate from Apple. Run again, it keeps the active demo certificate,
or renews it on the same topic when it is close to expiry, so that the devices enrolled with it
(the simulator's, kept across restarts) stay reachable.
"""

import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import pushcert
from .ca import key_usage
from .models import PushCertificate
from .pushcert import (
    DEMO_ORGANIZATION,
    OID_APNS_DEVELOPMENT,
    TOPIC_PREFIX,
    OrphanCounter,
    PushCertError,
)

VALIDITY_DAYS = 365  # as Apple's
RENEW_WITHIN_DAYS = 30  # a run closer to expiry than this makes a new one, same topic


@dataclass(frozen=True)
class DemoCertificate:
    certificate: PushCertificate
    created: bool  # False: the active demo certificate was kept


def build_demo_certificate(
    topic: str | None = None, *, now: dt.datetime | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed push certificate for `topic` (a new `com.apple.mgmt.External.<uuid4>`
    when None), with the same subject layout, key type and extensions as Apple's."""
    ident = str(uuid.uuid4())
    topic = topic or f"{TOPIC_PREFIX}External.{ident}"
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, topic),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Demo push certificate {ident}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_ORGANIZATION),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # Apple's marker of a sandbox certificate (DER NULL): a demo is a development setting.
        .add_extension(x509.UnrecognizedExtension(OID_APNS_DEVELOPMENT, b"\x05\x00"), False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def ensure_demo_push_certificate(
    *,
    orphaned_devices: OrphanCounter,
    force: bool = False,
    actor: object = "system",
    address: str | None = None,
    now: dt.datetime | None = None,
) -> DemoCertificate:
    """The active demo push certificate: kept, renewed on its topic, or made; refused
    (PushCertError) when a certificate from Apple is active. `orphaned_devices` and `force`
    are the import's topic rule (a demo over enrolled devices of another topic needs force)."""
    now = now or dt.datetime.now(dt.UTC)
    active = pushcert.active_push_certificate()
    if active is not None and not active.demo:
        raise PushCertError(
            f"a push certificate from Apple is imported (topic {active.topic}): the portal "
            "keeps it, a demo certificate would only reach a local APNs stand-in",
            field="certificate",
        )
    if active is not None and active.not_after - now > dt.timedelta(days=RENEW_WITHIN_DAYS):
        return DemoCertificate(active, created=False)
    certificate, key = build_demo_certificate(active.topic if active else None, now=now)
    result = pushcert._import(
        certificate,
        key,
        orphaned_devices=orphaned_devices,
        force=force,
        actor=actor,
        address=address,
        now=now,
        source="demo",
    )
    return DemoCertificate(result.certificate, created=True)


def demo_push_certificate_active() -> bool:
    """The active push certificate is a demo one (the dashboard's banner)."""
    return PushCertificate.objects.filter(active=True, demo=True).exists()


def real_push_certificate_missing() -> bool:
    """No push certificate from Apple is active (none, or only a demo one): real devices could
    not be woken, so creating an enrollment deserves a warning."""
    return not PushCertificate.objects.filter(active=True, demo=False).exists()


HOW_TO_GET_ONE = (
    "get one from Apple (README.md, Production, step 4 'The push certificate': "
    "`mdm_pushcert csr`, Apple's portal https://identity.apple.com/pushcert, then "
    "`mdm_pushcert import`)"
)


def real_push_certificate_warning() -> str | None:
    """Why real devices could not be managed yet (no push certificate from Apple), with what to
    do; None when one is imported. `mdm_enrollment create` and the enrollment page show it."""
    if not real_push_certificate_missing():
        return None
    if demo_push_certificate_active():
        return (
            "only the demo push certificate is active: pushes go only to the local APNs "
            "stand-in, so real devices enrolled with this link could never be woken. For real "
            f"devices, {HOW_TO_GET_ONE} before they enroll."
        )
    return (
        "no push certificate is imported: the enrollment's profile cannot be built and no "
        f"device can be woken until one is. {HOW_TO_GET_ONE[0].upper()}{HOW_TO_GET_ONE[1:]}."
    )
