"""Asset data the portal serves itself, at /mdm/assets/<public_id>, to devices only.

- Uploaded data (com.apple.asset.data, or a credential document an admin provides: user name
  and password, a PKCS#12 identity, a certificate): stored encrypted, its Reference carrying
  DataURL, ContentType, Size and Hash-SHA-256, so new data is a new ServerToken.
- ACME and SCEP credentials (com.apple.asset.credential.acme / .scep): the document is made
  for the device that asks, with a fresh one-time ClientIdentifier or challenge for the
  portal's own ACME directory or SCEP URL (certs.challenges), so each device gets its own
  certificate from our CA without any secret sitting in the declaration.

Every Reference says Authentication MDM: the device fetches the data as it checks in
(devices.downloads), and gets it only if the asset is in its manifest.
"""

import hashlib
import json
import secrets

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from certs.challenges import create_challenge
from certs.models import ScepChallenge
from devices.models import Device
from devices.protocol import ProtocolError, Reply
from mdm_portal.audit import audit
from mdm_portal.roles import ADMIN, OPERATOR

from .manifest import manifest
from .models import Declaration, ServedAsset
from .schema import CREDENTIALS, TYPES, DeclarationError, from_json, validate_payload
from .store import save_declaration

DATA_TYPE = "com.apple.asset.data"
CREDENTIAL_TYPES = {
    ServedAsset.Source.ACME: "com.apple.asset.credential.acme",
    ServedAsset.Source.SCEP: "com.apple.asset.credential.scep",
}
# The credential document each uploadable credential asset's data is.
UPLOADED_CREDENTIALS = {
    "com.apple.asset.credential.userpassword": "com.apple.credential.usernameandpassword",
    "com.apple.asset.credential.identity": "com.apple.credential.identity",
}
# Declarations only an admin may create, change, delete or give data: credentials the portal
# makes (ACME, SCEP) and credential documents that hold a password or a private key.
ADMIN_TYPES = frozenset({*CREDENTIAL_TYPES.values(), *UPLOADED_CREDENTIALS})
MAX_DATA_BYTES = 10 * 1024 * 1024
JSON = "application/json"

# Defaults of a credential the portal makes: ACME as the enrollment's (a P-384 key the
# Secure Enclave can hold and attest), SCEP an RSA key for signing and encryption.
ACME_DEFAULTS = {
    "KeyType": "ECSECPrimeRandom",
    "KeySize": 384,
    "HardwareBound": True,
    "Attest": True,
}
SCEP_DEFAULTS = {"Key Type": "RSA", "Keysize": 2048, "Key Usage": 1 | 4}


def role_to_change(declaration_type: str) -> str:
    """The role that may change a declaration of this Type (the pages and the API alike)."""
    return ADMIN if declaration_type in ADMIN_TYPES else OPERATOR


def data_url(public_id: str) -> str:
    return f"{settings.MDM_PUBLIC_URL}/mdm/assets/{public_id}"


def _reference(public_id: str, content_type: str, content: bytes | None = None) -> dict:
    reference = {"DataURL": data_url(public_id), "ContentType": content_type}
    if content is not None:
        reference["Size"] = len(content)
        reference["Hash-SHA-256"] = hashlib.sha256(content).hexdigest()
    return {"Reference": reference, "Authentication": {"Type": "MDM"}}


def _allowed_content_types(declaration_type: str) -> list[str]:
    for key in TYPES[declaration_type].fields:
        if key["name"] == "Reference":
            return key.get("content_types", [])
    return []


def check_data(declaration_type: str, content: bytes, content_type: str) -> None:
    """DeclarationError unless the data fits the asset Type: size, media type and, for a
    credential document, its schema."""
    if declaration_type not in TYPES or TYPES[declaration_type].kind != "asset":
        raise DeclarationError(f"{declaration_type} is not an asset Type")
    if "Reference" not in {key["name"] for key in TYPES[declaration_type].fields}:
        raise DeclarationError(f"{declaration_type} has no data to serve")
    if not content:
        raise DeclarationError("the asset's data is empty")
    if len(content) > MAX_DATA_BYTES:
        raise DeclarationError(f"the asset's data is over {MAX_DATA_BYTES} bytes")
    allowed = _allowed_content_types(declaration_type)
    if allowed and content_type not in allowed:
        raise DeclarationError(
            f"{declaration_type} data must be {' or '.join(allowed)}, not {content_type!r}"
        )
    if not content_type or "/" not in content_type:
        raise DeclarationError(f"{content_type!r} is not a media type")
    credential = UPLOADED_CREDENTIALS.get(declaration_type)
    if credential is not None:
        try:
            document = json.loads(content)
        except (UnicodeDecodeError, ValueError):
            raise DeclarationError(f"{credential} data must be JSON") from None
        validate_payload(CREDENTIALS[credential], from_json(CREDENTIALS[credential], document))


def check_credential_options(source: str, options: dict) -> dict:
    """The credential's options over its defaults, checked as the document they go into."""
    merged = {**(ACME_DEFAULTS if source == ServedAsset.Source.ACME else SCEP_DEFAULTS), **options}
    credential = f"com.apple.credential.{source}"
    validate_payload(CREDENTIALS[credential], {**_placeholder(source), **merged})
    if source == ServedAsset.Source.ACME and merged["Attest"] and not merged["HardwareBound"]:
        raise DeclarationError("an attested ACME key must be HardwareBound")
    return merged


def _placeholder(source: str) -> dict:
    """What the portal fills in per device, for checking options alone."""
    if source == ServedAsset.Source.ACME:
        return {"DirectoryURL": "https://x", "ClientIdentifier": "x", "Subject": [[["CN", "x"]]]}
    return {"URL": "https://x", "Challenge": "x"}


def serve_data(
    identifier: str,
    content: bytes,
    content_type: str,
    *,
    declaration_type: str = DATA_TYPE,
    by=None,
    address: str | None = None,
    description: str | None = None,
) -> Declaration:
    """Create the asset `identifier` with this data, or give it new data (a new ServerToken)."""
    check_data(declaration_type, content, content_type)
    with transaction.atomic():
        served = _served_for(identifier, declaration_type, ServedAsset.Source.DATA)
        served.content = content
        served.content_type = content_type
        served.size = len(content)
        served.sha256 = hashlib.sha256(content).hexdigest()
        payload = _reference(served.public_id, content_type, content)
        return _save(served, identifier, declaration_type, payload, by, address, description)


def serve_credential(
    identifier: str,
    source: str,
    options: dict | None = None,
    *,
    by=None,
    address: str | None = None,
    description: str | None = None,
) -> Declaration:
    """Create (or change) an ACME or SCEP credential asset served by the portal."""
    if source not in CREDENTIAL_TYPES:
        raise DeclarationError(f"a credential the portal serves is acme or scep, not {source!r}")
    declaration_type = CREDENTIAL_TYPES[source]
    merged = check_credential_options(source, options or {})
    with transaction.atomic():
        served = _served_for(identifier, declaration_type, source)
        served.options = merged
        served.content_type = JSON
        payload = _reference(served.public_id, JSON)
        if source == ServedAsset.Source.ACME:
            payload["Accessible"] = "Default"
        return _save(served, identifier, declaration_type, payload, by, address, description)


def _served_for(identifier: str, declaration_type: str, source: str) -> ServedAsset:
    existing = (
        ServedAsset.objects.select_for_update().filter(declaration__identifier=identifier).first()
    )
    if existing is not None:
        if existing.declaration.type != declaration_type or existing.source != source:
            raise DeclarationError(
                f"{identifier} is a {existing.declaration.type} ({existing.source}) asset"
            )
        return existing
    if Declaration.objects.filter(identifier=identifier).exists():
        raise DeclarationError(f"{identifier} exists and its data is not served by the portal")
    return ServedAsset(public_id=secrets.token_urlsafe(24), source=source)


def _save(served, identifier, declaration_type, payload, by, address, description) -> Declaration:
    declaration, _ = save_declaration(
        {"Type": declaration_type, "Identifier": identifier, "Payload": payload},
        by=by,
        address=address,
        description=description,
        served=served,
    )
    served.declaration = declaration
    served.save()
    return declaration


def _subject(device: Device) -> list:
    return [
        [["CN", device.serial_number or device.udid]],
        [["O", settings.MDM_ORGANIZATION]],
    ]


def credential_document(served: ServedAsset, device: Device) -> dict:
    """The com.apple.credential.acme / .scep document for `device`, with a fresh one-time
    secret that our ACME server or SCEP endpoint takes once."""
    options = dict(served.options)
    if served.source == ServedAsset.Source.ACME:
        secret, _ = create_challenge(
            purpose=ScepChallenge.Purpose.ACME, attestation_required=bool(options["Attest"])
        )
        return {
            "DirectoryURL": f"{settings.MDM_PUBLIC_URL}/acme/directory",
            "ClientIdentifier": secret,
            "Subject": _subject(device),
            **options,
        }
    secret, _ = create_challenge(purpose=ScepChallenge.Purpose.SCEP)
    return {
        "URL": f"{settings.MDM_PUBLIC_URL}/scep",
        "Challenge": secret,
        "Subject": _subject(device),
        **options,
    }


def asset_reply(device: Device, public_id: str) -> Reply:
    """The data of the asset `public_id` for `device`: 404 unless it is in its manifest."""
    served = ServedAsset.objects.select_related("declaration").filter(public_id=public_id).first()
    if served is None or served.declaration.identifier not in manifest(device):
        raise ProtocolError(404, f"no asset {public_id} for {device.udid}")
    with transaction.atomic():
        if served.source == ServedAsset.Source.DATA:
            body = bytes(served.content or b"")
        else:
            body = json.dumps(credential_document(served, device)).encode()
            audit(
                "declaration.credential_served",
                actor="device",
                target=device.udid,
                asset=served.declaration.identifier,
                source=served.source,
            )
        ServedAsset.objects.filter(pk=served.pk).update(
            downloads=F("downloads") + 1, last_download_at=timezone.now()
        )
    return Reply(body=body, content_type=served.content_type)
