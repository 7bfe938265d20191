"""The server's TLS certificate: the chain devices and browsers see on MDM_PUBLIC_URL.

It comes from one of two places, and this module is the one reader of both:

- the administrator's chain, `MDM_TLS_CERT_FILE` (PEM, the server's certificate first, e.g. a
  public CA's full chain), whose key `MDM_TLS_KEY_FILE` only the TLS proxy reads (nginx,
  started by scripts/serve.sh). `MDM_TLS_CHAIN_FILE`, the setting's former name, still works.
- without it, for an https MDM_PUBLIC_URL, the portal's own (`ensure_server_tls`, run by
  `mdm_init`): a server-TLS CA and a certificate for the host of MDM_PUBLIC_URL, kept as
  ServerIdentity rows with their keys Fernet-encrypted like every key. This CA is not the
  device-identity CA: a device identity (clientAuth, from that CA) can never serve TLS, and a
  server certificate (serverAuth, from this one) never chains to the device CA, so it can never
  identify a device. Its name constraints allow only the portal's host, so devices that trust it
  trust it for nothing else.

A chain that does not lead to a public root (certifi's Mozilla roots, close to Apple's) is
private: enrollment profiles carry its CA certificates as trust payloads (certificate payloads
install before the MDM payload), and `chain_warnings` says so, and when a certificate in the
chain is close to expiry (a profile must be replaced before any certificate in it expires).
"""

import datetime as dt
import ipaddress
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import transaction

from mdm_portal.audit import audit

from .ca import (
    key_usage,
    load_stored_key,
    new_private_key,
    private_key_pem,
    self_signed_ca,
    sha256_hex,
)
from .models import ServerIdentity

SERVER_TLS_CA = "server-tls-ca"
SERVER_TLS = "server-tls"
TLS_PURPOSES = (SERVER_TLS_CA, SERVER_TLS)
TLS_CA_COMMON_NAME = "MDM Portal Server TLS CA"
# Apple's limit for TLS server certificates from public CAs is 398 days; the portal's own
# follows it, and is renewed by mdm_init (scripts/serve.sh start) once it has less than a month.
LEAF_VALIDITY_DAYS = 397
RENEW_WITHIN_DAYS = 30


class ServerTLSError(Exception):
    """The configured chain file cannot be read or holds no certificate."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def public_host() -> str:
    return urlsplit(settings.MDM_PUBLIC_URL).hostname or "localhost"


def chain_file() -> str:
    """The administrator's chain file, or "" when the portal makes its own."""
    return getattr(settings, "MDM_TLS_CERT_FILE", "") or ""


def makes_its_own() -> bool:
    return not chain_file() and settings.MDM_PUBLIC_URL.startswith("https://")


def read_chain_file(path: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ServerTLSError(f"MDM_TLS_CERT_FILE {path} cannot be read: {exc}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ServerTLSError(f"MDM_TLS_CERT_FILE {path} holds no PEM certificate") from None


def _load(identity: ServerIdentity | None) -> x509.Certificate | None:
    if identity is None:
        return None
    return x509.load_pem_x509_certificate(identity.certificate_pem.encode())


def generated_chain() -> list[x509.Certificate]:
    """The portal's own chain, server certificate first, or [] before mdm_init made it."""
    rows = {
        row.purpose: row
        for row in ServerIdentity.objects.filter(purpose__in=TLS_PURPOSES).defer("private_key_pem")
    }
    if len(rows) < 2:
        return []
    return [_load(rows[SERVER_TLS]), _load(rows[SERVER_TLS_CA])]


def served_chain() -> list[x509.Certificate]:
    """The chain the server presents: the administrator's file, else the portal's own (https
    only), else []. Raises ServerTLSError for a file that cannot be read."""
    path = chain_file()
    if path:
        return read_chain_file(path)
    if makes_its_own():
        return generated_chain()
    return []


def generated_key_pem() -> bytes:
    """The private key of the portal's own server certificate (PKCS#8 PEM), for the proxy."""
    identity = ServerIdentity.objects.filter(purpose=SERVER_TLS).first()
    if identity is None:
        raise ServerTLSError("no server TLS certificate yet: run `python manage.py mdm_init`")
    return bytes(identity.private_key_pem)


# -- names, issuers, public roots -----------------------------------------------------------


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.lower())


def _dns_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def names_host(certificate: x509.Certificate, host: str) -> bool:
    """Whether the certificate's subjectAltName covers `host` (what devices check)."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    wanted = _general_name(host)
    if isinstance(wanted, x509.IPAddress):
        return wanted.value in names.get_values_for_type(x509.IPAddress)
    return any(_dns_matches(name, host) for name in names.get_values_for_type(x509.DNSName))


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def is_self_signed(certificate: x509.Certificate) -> bool:
    return _issued_by(certificate, certificate)


@lru_cache(maxsize=1)
def _public_roots() -> tuple[x509.Certificate, ...]:
    with warnings.catch_warnings():  # an old root or two has a serial RFC 5280 disallows
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return tuple(x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes()))


def is_public(chain: list[x509.Certificate]) -> bool:
    """Whether the chain leads to a public root (so devices trust it without a profile)."""
    if not chain:
        return False
    top = chain[-1]
    return any(top == root or _issued_by(top, root) for root in _public_roots())


def chain_warnings(
    chain: list[x509.Certificate], host: str, warn_days: int, now: dt.datetime | None = None
) -> list[str]:
    """What an administrator should know about the served chain, one sentence each."""
    now = now or _now()
    if not chain:
        return [
            "no server TLS certificate: set MDM_PUBLIC_URL to an https URL and run mdm_init, "
            "or set MDM_TLS_CERT_FILE and MDM_TLS_KEY_FILE"
        ]
    warnings = []
    if not names_host(chain[0], host):
        warnings.append(
            f"the server certificate ({chain[0].subject.rfc4514_string()}) does not name {host}, "
            "the host of MDM_PUBLIC_URL: devices will refuse it"
        )
    if not is_public(chain):
        top = chain[-1]
        warnings.append(
            f"the server TLS chain is private (it ends at {top.subject.rfc4514_string()}): "
            "devices trust it through the trust payload of their enrollment profile, browsers "
            "warn before the enrollment page opens, and devices need a new enrollment profile "
            f"before it expires on {top.not_valid_after_utc:%Y-%m-%d}; a certificate from a "
            "public CA (MDM_TLS_CERT_FILE, MDM_TLS_KEY_FILE) avoids all three"
        )
        if not any(is_self_signed(c) for c in chain):
            warnings.append(
                "the private chain does not include its root certificate: add it to the chain "
                "file, or enrollment profiles cannot carry it and devices will not connect"
            )
    for certificate in chain:
        days_left = (certificate.not_valid_after_utc - now).days
        if certificate.not_valid_after_utc <= now:
            warnings.append(f"{certificate.subject.rfc4514_string()} has EXPIRED")
        elif days_left <= warn_days:
            warnings.append(
                f"{certificate.subject.rfc4514_string()} expires in {days_left} days "
                f"({certificate.not_valid_after_utc:%Y-%m-%d})"
            )
    return warnings


# -- the portal's own chain ------------------------------------------------------------------


def _constrained_to(ca: x509.Certificate, host: str) -> bool:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    return list(constraints.permitted_subtrees or []) == [_permitted_subtree(host)]


def _permitted_subtree(host: str) -> x509.GeneralName:
    name = _general_name(host)
    if isinstance(name, x509.IPAddress):
        return x509.IPAddress(ipaddress.ip_network(f"{name.value}/{name.value.max_prefixlen}"))
    return name


def _build_tls_ca(host: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = new_private_key("rsa")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{TLS_CA_COMMON_NAME} ({host})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.MDM_ORGANIZATION),
        ]
    )
    constraints = x509.NameConstraints(
        permitted_subtrees=[_permitted_subtree(host)], excluded_subtrees=None
    )
    return self_signed_ca(key, name, (constraints,)), key


def _build_leaf(
    host: str, ca: x509.Certificate, ca_key
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = new_private_key("rsa")
    now = _now()
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_VALIDITY_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(host)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def _store(purpose: str, certificate: x509.Certificate, key) -> ServerIdentity:
    identity, _ = ServerIdentity.objects.update_or_create(
        purpose=purpose,
        defaults={
            "certificate_pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "private_key_pem": private_key_pem(key),
            "not_after": certificate.not_valid_after_utc,
        },
    )
    return identity


def _leaf_renewal_reason(
    leaf: x509.Certificate | None, ca: x509.Certificate, host: str, now: dt.datetime
) -> str:
    if leaf is None:
        return "created"
    if not _issued_by(leaf, ca):
        return "renewed (new server-TLS CA)"
    if not names_host(leaf, host):
        return f"renewed (for {host})"
    if leaf.not_valid_after_utc - now < dt.timedelta(days=RENEW_WITHIN_DAYS):
        return "renewed (close to expiry)"
    return ""


def ensure_server_tls(*, actor: object = "mdm_init") -> tuple[str, ServerIdentity | None]:
    """Make, or renew, the portal's own server certificate when it is the one served.

    Returns (state, server identity): "file" (MDM_TLS_CERT_FILE is served), "http"
    (MDM_PUBLIC_URL is not https: nothing to serve), else "created", "renewed (...)" or
    "present". A new host gets a new CA (its name constraints name the host), so devices
    enrolled for the old URL must enroll again, as they must anyway for a new ServerURL.
    """
    if chain_file():
        return "file", None
    if not makes_its_own():
        return "http", None
    host = public_host()
    now = _now()
    with transaction.atomic():
        rows = {
            row.purpose: row
            for row in ServerIdentity.objects.select_for_update().filter(purpose__in=TLS_PURPOSES)
        }
        ca = _load(rows.get(SERVER_TLS_CA))
        if ca is None or not _constrained_to(ca, host) or ca.not_valid_after_utc <= now:
            ca, ca_key = _build_tls_ca(host)
            _store(SERVER_TLS_CA, ca, ca_key)
            audit("server_tls.ca_created", actor=actor, target=host, sha256=sha256_hex(ca))
        else:
            ca_key = load_stored_key(rows[SERVER_TLS_CA].private_key_pem)
        state = _leaf_renewal_reason(_load(rows.get(SERVER_TLS)), ca, host, now)
        if not state:
            return "present", rows[SERVER_TLS]
        leaf, leaf_key = _build_leaf(host, ca, ca_key)
        identity = _store(SERVER_TLS, leaf, leaf_key)
    audit("server_tls.issued", actor=actor, target=host, state=state, sha256=sha256_hex(leaf))
    return state, identity


def write_private_file(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only (0600), atomically."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
