"""Trusted roots read from a PEM file a setting names (MDM_ACME_ATTESTATION_ROOTS,
MDM_DEP_DEVICE_ROOTS).

The file (a few kilobytes) is read each time it is needed, so a replaced file, or a test's
settings pointing elsewhere, takes effect at once; only the parsing is remembered, keyed on the
file's SHA-256.
"""

import hashlib
from pathlib import Path

from cryptography import x509

_parsed: dict[bytes, list[x509.Certificate]] = {}
_KEEP = 8  # distinct files remembered: a handful of settings, and tests' own roots


def roots_from_file(path: str | Path) -> list[x509.Certificate]:
    """The certificates of the PEM file at `path`. OSError if it cannot be read, ValueError
    if it holds no certificate that parses: the caller says which setting is wrong."""
    pem = Path(path).read_bytes()
    digest = hashlib.sha256(pem).digest()
    roots = _parsed.get(digest)
    if roots is None:
        roots = x509.load_pem_x509_certificates(pem)
        if len(_parsed) >= _KEEP:
            _parsed.clear()
        _parsed[digest] = roots
    return roots
