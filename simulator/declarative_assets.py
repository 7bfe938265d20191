"""Loading an asset declaration's data, as a device does before it activates a configuration
that references the asset.

The Payload's Reference names the DataURL (with, optionally, its Size and Hash-SHA-256);
Authentication {"Type": "MDM"} means the device fetches it as it checks in: an Mdm-Signature
over the empty body of the GET (or its identity as TLS client certificate). The data must
match the Size and hash given (Error.AssetCannotBeVerified otherwise); a refusal or an
unreachable URL is Error.AssetCannotBeDownloaded. Then, by Type:

- com.apple.asset.credential.acme / .scep: the data is a credential document (DirectoryURL,
  ClientIdentifier, KeyType, … / URL, Challenge, …); the device gets the certificate with it,
  by the same ACME client (with attestation when Attest says so) or SCEP client it enrolls
  with. The asset is valid when a certificate came.
- com.apple.asset.credential.userpassword / .identity: a JSON document
  (Error.AssetCannotBeDeserialized when it is not).
- com.apple.asset.data: any bytes; their text is kept when short (Apple's test configuration
  echoes it).

The outcome is a plain dictionary kept in the device's state (DeclarativeState.assets):
{"server_token", "valid", "reasons", "size", "sha256", "text", "certificate_pem"}.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from . import declarative_catalog as catalog
from . import profile as profiles
from .identity import sign_detached

if TYPE_CHECKING:
    from .device import SimulatedDevice

KEPT_TEXT = 4096  # data assets up to this size keep their text in the state
JSON_DOCUMENTS = ("com.apple.asset.credential.userpassword", "com.apple.asset.credential.identity")


class AssetFailed(Exception):
    """Loading stopped with this status reason."""

    def __init__(self, reason: dict):
        super().__init__(reason["description"])
        self.reason = reason


def _outcome(token: str, valid: bool, reasons: list[dict] = (), **found) -> dict:
    return {"server_token": token, "valid": valid, "reasons": list(reasons), **found}


def _cannot(code: str, identifier: str, what: str, why: str) -> AssetFailed:
    return AssetFailed(catalog.error(code, f"Asset “{identifier}” {what}.", why))


async def load(device: SimulatedDevice, identifier: str, declaration: dict) -> dict:
    """Load the asset; its outcome (never raises for what the device can report)."""
    token = declaration["ServerToken"]
    payload = declaration.get("Payload") or {}
    reference = payload.get("Reference")
    if not isinstance(reference, dict) or not reference.get("DataURL"):
        return _outcome(token, True)  # nothing to download (a user identity, …)
    try:
        content = await _download(device, identifier, payload, reference)
        found = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        found.update(await _use(device, identifier, declaration["Type"], content))
    except AssetFailed as failed:
        return _outcome(token, False, [failed.reason])
    return _outcome(token, True, **found)


async def _download(device: SimulatedDevice, identifier: str, payload: dict, reference: dict):
    from .device import ExchangeFailed  # device.py imports this package's sync

    state = device.state
    url = str(reference["DataURL"])
    authentication = (payload.get("Authentication") or {}).get("Type", "None")
    headers = {"User-Agent": "MDM/1.0"}
    if authentication == "MDM":
        client = device._mdm_client()
        if state.sign_message or not device.fleet.client_cert:
            headers["Mdm-Signature"] = sign_detached(b"", state.certificate, state.key)
    else:
        client = device.fleet.client(state.trust_pem)
    try:
        response = await device._request("asset", client, "GET", url, headers=headers)
    except ExchangeFailed as exc:
        code = "Error.AssetCannotBeDownloaded"
        raise _cannot(code, identifier, "cannot be downloaded", str(exc)) from None
    if response.status_code != 200:
        device.stats.error(f"declarative: asset data HTTP {response.status_code}")
        why = f"HTTP {response.status_code} from {url}"
        raise _cannot("Error.AssetCannotBeDownloaded", identifier, "cannot be downloaded", why)
    device.stats.assets_downloaded += 1
    content = response.content
    size, digest = reference.get("Size"), reference.get("Hash-SHA-256")
    if size is not None and size != len(content):
        why = f"{len(content)} bytes, not the Size {size}"
    elif digest is not None and str(digest).lower() != hashlib.sha256(content).hexdigest():
        why = "its SHA-256 is not the Hash-SHA-256 given"
    else:
        return content
    device.stats.error("declarative: asset data does not match its Reference")
    raise _cannot("Error.AssetCannotBeVerified", identifier, "cannot be verified", why)


def _document(identifier: str, content: bytes) -> dict:
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict):
        code = "Error.AssetCannotBeDeserialized"
        raise _cannot(code, identifier, "is not a JSON document", "not a JSON object")
    return document


async def _use(device: SimulatedDevice, identifier: str, asset_type: str, content: bytes) -> dict:
    """What the data gives, by the asset's Type."""
    if asset_type == "com.apple.asset.data":
        text = None
        if len(content) <= KEPT_TEXT:
            try:
                text = content.decode()
            except UnicodeDecodeError:
                text = None
        return {"text": text}
    if asset_type in JSON_DOCUMENTS:
        _document(identifier, content)
        return {}
    if asset_type == "com.apple.asset.credential.acme":
        return await _credential(device, identifier, "acme", _document(identifier, content))
    if asset_type == "com.apple.asset.credential.scep":
        return await _credential(device, identifier, "scep", _document(identifier, content))
    return {}


async def _credential(device: SimulatedDevice, identifier: str, source: str, document: dict):
    """The certificate a credential document gives, by ACME or SCEP."""
    from .device import ExchangeFailed

    try:
        if source == "acme":
            certificate, _key = await device._acme(profiles.read_acme_payload(document))
        else:
            if not document.get("URL"):
                raise profiles.ProfileError("the SCEP credential has no URL")
            certificate, _key = await device._scep(document)
    except profiles.ProfileError as exc:
        code = "Error.AssetCannotBeDeserialized"
        raise _cannot(code, identifier, "is not a usable credential", str(exc)) from None
    except ExchangeFailed as exc:  # counted by the device as it failed
        code = "Error.AssetCannotBeDownloaded"
        raise _cannot(code, identifier, f"gave no {source.upper()} certificate", str(exc)) from None
    device.stats.credentials[source] += 1
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return {"certificate_pem": pem}
