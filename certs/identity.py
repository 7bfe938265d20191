"""Who is talking: the device identity behind a check-in or server-URL request.

The certificate comes from the TLS proxy (a header, when MDM_CLIENT_CERT_HEADER names one) or
else from the Mdm-Signature header (a CMS detached signature over the exact body). Either way it
must chain to our CA, be in date, be in our registry of issued certificates and not be revoked.

What never changes about a certificate is learned once per process: which CA issued it (a
signature check) and its row in the registry. What can change, revocation, is read from the
database on every request: `DeviceIdentity.require_unrevoked`, or, on the server-URL loop,
inside the one statement that also locks the device (devices/polling.py).
"""

import base64
import binascii
import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from mdm_portal import hot_sql

from .ca import ca_certificate
from .cms import CMSError, verify_detached
from .models import CertificateAuthority, IssuedCertificate

log = logging.getLogger(__name__)


class IdentityError(Exception):
    """The request does not prove a trusted device identity. The reason goes to the log."""


@dataclass(frozen=True)
class KnownCertificate:
    """What a verified certificate proved once and for all: our CA issued it, it is this row."""

    record_id: int
    authority_id: int
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass
class DeviceIdentity:
    """A presented certificate that chains to our CA, is in date and is in the registry.

    Revocation is not part of it: `require_unrevoked` checks it (and loads the registry row),
    or the caller checks `revoked_at` in a statement of its own in the same request.
    """

    certificate: x509.Certificate
    record_id: int
    method: str  # "client-cert-header" or "mdm-signature"
    fingerprint: str = ""
    _record: IssuedCertificate | None = field(default=None, repr=False)

    def require_unrevoked(self) -> IssuedCertificate:
        """The registry row, read now; IdentityError if it was revoked (or removed)."""
        record = IssuedCertificate.objects.filter(pk=self.record_id).first()
        if record is None:
            raise IdentityError(f"certificate {self.fingerprint} is no longer in the registry")
        if record.revoked_at is not None:
            raise IdentityError(
                f"certificate {self.fingerprint} was revoked at {record.revoked_at}"
            )
        self._record = record
        return record

    @property
    def record(self) -> IssuedCertificate:
        """The registry row, checked for revocation the first time it is asked for."""
        return self._record if self._record is not None else self.require_unrevoked()


def certificate_from_header(value: str) -> x509.Certificate:
    """Parse a forwarded client certificate: RFC 9440 `:base64-DER:` or URL-escaped PEM."""
    value = value.strip()
    try:
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            return x509.load_der_x509_certificate(base64.b64decode(value[1:-1], validate=True))
        return x509.load_pem_x509_certificate(unquote(value).encode())
    except (ValueError, binascii.Error) as exc:
        raise IdentityError(f"the client certificate header holds no certificate: {exc}") from None


def certificate_from_signature(header_value: str, body: bytes) -> x509.Certificate:
    try:
        signature = base64.b64decode("".join(header_value.split()), validate=True)
    except (ValueError, binascii.Error):
        raise IdentityError("Mdm-Signature is not valid base64") from None
    try:
        return verify_detached(signature, body)
    except CMSError as exc:
        raise IdentityError(f"Mdm-Signature: {exc}") from None


def presented_certificate(
    body: bytes, client_certificate: str, mdm_signature: str
) -> tuple[x509.Certificate, str]:
    """The certificate the device presents: the TLS proxy's header value (only when the portal
    trusts that header; the caller decides), or else the Mdm-Signature over `body`."""
    if client_certificate:
        return certificate_from_header(client_certificate), "client-cert-header"
    if mdm_signature:
        return certificate_from_signature(mdm_signature, body), "mdm-signature"
    raise IdentityError("no client certificate and no Mdm-Signature")


class _Authorities:
    """Our CAs' certificates and validity, parsed once per process. A CA is never changed
    once made; a new one (made by another process) is picked up when a certificate chains to
    none of those known here."""

    def __init__(self) -> None:
        self._known: list[tuple[int, x509.Certificate, dt.datetime, dt.datetime]] = []
        self._lock = threading.Lock()

    def _load(self) -> None:
        # The private key stays undecrypted: checking a chain needs only the certificate.
        rows = CertificateAuthority.objects.defer("private_key_pem")
        self._known = [(ca.pk, ca_certificate(ca), ca.not_before, ca.not_after) for ca in rows]

    def _find(self, matches: Callable[[int, x509.Certificate], bool]):
        """The first known CA that `matches`, reading them again once if none does."""
        for reload in (False, True):
            if reload or not self._known:
                with self._lock:
                    self._load()
            for pk, issuer, not_before, not_after in self._known:
                if matches(pk, issuer):
                    return pk, not_before, not_after
        return None

    def issuer_of(self, certificate: x509.Certificate) -> tuple[int, dt.datetime, dt.datetime]:
        def issued(_pk: int, issuer: x509.Certificate) -> bool:
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                return False
            return True

        found = self._find(issued)
        if found is None:
            raise IdentityError("the certificate does not chain to this portal's CA")
        return found

    def validity(self, authority_id: int) -> tuple[dt.datetime, dt.datetime]:
        found = self._find(lambda pk, _issuer: pk == authority_id)
        if found is None:
            raise IdentityError("the issuing CA is no longer known")
        return found[1], found[2]

    def forget(self) -> None:
        with self._lock:
            self._known = []


_authorities = _Authorities()
# Verified certificates by SHA-256 fingerprint, most recently seen last. A fleet's worth of
# small entries; past the bound the least recently seen are checked again when they return.
_known: OrderedDict[str, KnownCertificate] = OrderedDict()
KNOWN_CERTIFICATES_MAX = 50_000
_known_lock = threading.Lock()


def forget_verified() -> None:
    """Drop what this process learned (tests that replace the CA, `mdm_init --force`)."""
    _authorities.forget()
    with _known_lock:
        _known.clear()


def _in_date(certificate_dates: tuple[dt.datetime, dt.datetime], authority_id: int) -> None:
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = certificate_dates
    if not (not_before <= now <= not_after):
        raise IdentityError("the certificate is not within its validity period")
    ca_not_before, ca_not_after = _authorities.validity(authority_id)
    if not (ca_not_before <= now <= ca_not_after):
        raise IdentityError("the issuing CA is not within its validity period")


_REGISTRY_SQL = f"SELECT id FROM {IssuedCertificate._meta.db_table} WHERE sha256 = %s"  # noqa: S608


def _learn(certificate: x509.Certificate, fingerprint: str) -> KnownCertificate:
    authority_id, _nb, _na = _authorities.issuer_of(certificate)
    dates = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
    _in_date(dates, authority_id)
    # A fixed statement: a web process meets every device of the fleet once.
    rows = hot_sql.fetch(_REGISTRY_SQL, [fingerprint])
    record_id = rows[0][0] if rows else None
    if record_id is None:
        raise IdentityError(
            f"certificate {fingerprint} is not in the registry of issued certificates"
        )
    known = KnownCertificate(record_id, authority_id, *dates)
    with _known_lock:
        _known[fingerprint] = known
        if len(_known) > KNOWN_CERTIFICATES_MAX:
            _known.popitem(last=False)
    return known


def known_certificate(certificate: x509.Certificate) -> tuple[KnownCertificate, str]:
    """The certificate's CA and registry row (learned once), after checking that it and its
    CA are within their validity now. Raises IdentityError. Revocation is not checked here."""
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
    with _known_lock:
        known = _known.get(fingerprint)
        if known is not None:
            _known.move_to_end(fingerprint)
    if known is None:
        return _learn(certificate, fingerprint), fingerprint
    _in_date((known.not_before, known.not_after), known.authority_id)
    return known, fingerprint


def verify_certificate(certificate: x509.Certificate) -> IssuedCertificate:
    """Check that `certificate` is a current, unrevoked identity our CA issued."""
    known, fingerprint = known_certificate(certificate)
    identity = DeviceIdentity(certificate, known.record_id, "certificate", fingerprint)
    return identity.require_unrevoked()


def authenticate_device(
    body: bytes, *, client_certificate: str = "", mdm_signature: str = ""
) -> DeviceIdentity:
    """The verified identity of the device that sent `body`, or raise IdentityError.

    `client_certificate` is the TLS proxy's forwarded certificate ("" when there is none or
    the header is not trusted), `mdm_signature` the Mdm-Signature header. Revocation is the
    caller's next step (DeviceIdentity.require_unrevoked, or its own statement).
    """
    certificate, method = presented_certificate(body, client_certificate, mdm_signature)
    known, fingerprint = known_certificate(certificate)
    return DeviceIdentity(certificate, known.record_id, method, fingerprint)
