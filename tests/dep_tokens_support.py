"""Server tokens as Apple Business Manager makes them, for the tests (no test reaches Apple).

ABM writes the OAuth credentials as JSON between `-----BEGIN MESSAGE-----` and
`-----END MESSAGE-----` in a text/plain MIME entity, envelopes that (CMS EnvelopedData, RSA key
transport) to the certificate the admin uploaded, and serves it as an S/MIME file (smime.p7m).
`make_server_token` does the same with cryptography's PKCS7EnvelopeBuilder; `openssl_token`
makes one with OpenSSL's streaming S/MIME writer (BER, indefinite lengths) and a chosen
cipher, an outside producer of the other forms a token may take.
"""

import datetime as dt
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

DEFAULT_EXPIRY = dt.timedelta(days=365)


def token_json(
    *,
    consumer_key: str = "CK_3a1b",
    consumer_secret: str = "CS_5e2f",
    access_token: str = "AT_O7c9",
    access_secret: str = "AS_d4e8",
    expiry: dt.datetime | None = None,
    **extra,
) -> dict:
    """The token's JSON object (extra keys add to it; a key given as None is left out)."""
    expiry = expiry or dt.datetime.now(dt.UTC).replace(microsecond=0) + DEFAULT_EXPIRY
    data = {
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "access_token": access_token,
        "access_secret": access_secret,
        "access_token_expiry": expiry.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }
    return {key: value for key, value in data.items() if value is not None}


def message_entity(data: dict | str) -> bytes:
    """The decrypted content ABM writes: a text/plain MIME entity around the MESSAGE block."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (
        "Content-Type: text/plain;charset=UTF-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"-----BEGIN MESSAGE-----\r\n{text}\r\n-----END MESSAGE-----\r\n"
    ).encode()


def envelope(certificate_pem: str, content: bytes) -> bytes:
    """`content` enveloped to the certificate, S/MIME encoded (what ABM serves as .p7m)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .add_recipient(certificate)
        .encrypt(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.Binary])
    )


def make_server_token(
    certificate_pem: str,
    *,
    consumer_key: str = "CK_3a1b",
    consumer_secret: str = "CS_5e2f",
    access_token: str = "AT_O7c9",
    access_secret: str = "AS_d4e8",
    expiry: dt.datetime | None = None,
) -> bytes:
    """A server token (.p7m) as ABM makes it, enveloped to `certificate_pem`; `expiry`
    defaults to a year from now."""
    data = token_json(
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        access_token=access_token,
        access_secret=access_secret,
        expiry=expiry,
    )
    return envelope(certificate_pem, message_entity(data))


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def openssl_token(
    certificate_pem: str, content: bytes, cipher: str = "aes-256-cbc", *, keyid: bool = False
) -> bytes:
    """`content` enveloped by `openssl cms -encrypt -stream` (BER with indefinite lengths, as
    streaming S/MIME writers make it) with `cipher` (e.g. des3, aes-192-cbc); `keyid` names
    the recipient by subject key identifier instead of issuer and serial number."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "cert.pem").write_text(certificate_pem)
        (work / "content").write_bytes(content)
        subprocess.run(
            [
                "openssl", "cms", "-encrypt", "-binary", "-stream", f"-{cipher}",
                *(["-keyid"] if keyid else []),
                "-in", str(work / "content"), "-outform", "SMIME",
                "-out", str(work / "token.p7m"), str(work / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return (work / "token.p7m").read_bytes()
