"""How a batch reaches APNs: its URL, topic and settings, and TLS with the push certificate.

`push_config(certificate)` reads everything the async side of `commands.apns` needs
beforehand (settings, the certificate, the decrypted key loaded into an SSLContext), so the
event loop never touches Django. `certificate_problem` says why a certificate cannot be used
at all (missing, expired, a demo certificate without a stand-in) before anything is loaded.

A demo certificate (`PushCertificate.demo`, made by `mdm_pushcert demo`) pushes only to
MDM_APNS_URL, a local stand-in, and never to Apple's hosts: with no MDM_APNS_URL, or one that
names Apple, it refuses to push, and the reason is recorded and logged like any other.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from certs.models import PushCertificate

PRODUCTION_URL = "https://api.push.apple.com"
DEVELOPMENT_URL = "https://api.sandbox.push.apple.com"
APPLE_DOMAIN = "apple.com"


@dataclass(frozen=True)
class PushConfig:
    """Everything the async side needs, read from settings and the certificate beforehand."""

    base_url: str
    topic: str
    ssl_context: ssl.SSLContext
    concurrency: int
    retries: int
    expiration: int  # unix time


def certificate_problem(certificate: PushCertificate | None, now: dt.datetime) -> str | None:
    """Why no push can be sent with `certificate` (missing, expired); None if it may be used."""
    if certificate is None:
        return "no push certificate"
    if certificate.not_after <= now:
        return f"push certificate expired on {certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if certificate.demo:
        return demo_target_problem()
    return None


def demo_target_problem() -> str | None:
    """Why a demo certificate may not push to MDM_APNS_URL (unset, or Apple's); None if it may.
    Apple would refuse a self-signed certificate anyway: not connecting at all keeps a demo
    from ever reaching out of the machine and says what to do instead."""
    url = settings.MDM_APNS_URL
    if not url:
        return (
            "demo push certificate: pushes go only to a local APNs stand-in and MDM_APNS_URL is "
            "not set (scripts/quickstart.sh --demo sets it); for real devices import Apple's "
            "push certificate (`mdm_pushcert import`)"
        )
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == APPLE_DOMAIN or host.endswith("." + APPLE_DOMAIN):
        return (
            f"demo push certificate: MDM_APNS_URL ({url}) is Apple's, and a demo certificate "
            "pushes only to a local APNs stand-in"
        )
    return None


def apns_base_url(certificate: PushCertificate) -> str:
    """MDM_APNS_URL (a stand-in), else Apple's production or development host on port 443.
    A demo certificate gets MDM_APNS_URL or ValueError, never Apple's host."""
    if certificate.demo:
        problem = demo_target_problem()
        if problem:
            raise ValueError(problem)
    if settings.MDM_APNS_URL:
        return settings.MDM_APNS_URL.rstrip("/")
    return DEVELOPMENT_URL if certificate.development else PRODUCTION_URL


def push_config(certificate: PushCertificate) -> PushConfig:
    """The batch's settings; raises ssl.SSLError, OSError, TypeError or ValueError when the
    certificate or its key cannot be loaded."""
    return PushConfig(
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
