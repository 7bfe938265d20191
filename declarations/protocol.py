"""The DeclarativeManagement check-in: one function per Endpoint, each returning the JSON
Apple's protocol schema describes (a Reply: data, not HTTP).

- `tokens`: {"SyncTokens": {"DeclarationsToken", "Timestamp"}} (TokensResponse);
- `declaration-items`: {"Declarations": {"Activations", "Assets", "Configurations",
  "Management"}, "DeclarationsToken"}, the four arrays always present, each item an
  Identifier and its ServerToken (DeclarationItemsResponse);
- `declaration/<kind>/<identifier>`: the declaration itself (Type, Identifier, ServerToken,
  Payload) at the revision the device's last declaration-items answer named, or else as it
  is now if it is in the device's manifest; 404 otherwise;
- `status`: the device's status report, stored (status.record_status); 200 with no body.

devices.checkin calls `handle` (registered by DeclarationsConfig) inside the check-in's
transaction, with the device the message's certificate is bound to: a refusal (ProtocolError)
changes nothing.
"""

import json

from devices.models import Device
from devices.protocol import ProtocolError, Reply

from .manifest import manifest
from .models import DeclarationRevision, DeviceDeclarations
from .schema import KINDS, MANIFEST_ARRAYS
from .status import record_status
from .sync import advertise

JSON = "application/json"


def json_reply(value: dict) -> Reply:
    return Reply(body=json.dumps(value, separators=(",", ":")).encode(), content_type=JSON)


def tokens(device: Device, endpoint: str) -> Reply:
    return json_reply({"SyncTokens": advertise(device, endpoint).sync_tokens})


def declaration_items(device: Device, endpoint: str) -> Reply:
    advertised = advertise(device, endpoint, with_items=True)
    arrays: dict[str, list] = {MANIFEST_ARRAYS[kind]: [] for kind in KINDS}
    for declaration in sorted(advertised.declarations.values(), key=lambda d: d.identifier):
        arrays[MANIFEST_ARRAYS[declaration.kind]].append(
            {"Identifier": declaration.identifier, "ServerToken": declaration.server_token}
        )
    return json_reply({"Declarations": arrays, "DeclarationsToken": advertised.token})


def declaration(device: Device, endpoint: str) -> Reply:
    parts = endpoint.split("/", 2)
    if len(parts) != 3 or parts[1] not in KINDS or not parts[2]:
        raise ProtocolError(
            400, f"DeclarativeManagement: {endpoint!r} is not declaration/<kind>/<identifier>"
        )
    _, kind, identifier = parts
    found = advertised_revision(device, identifier) or manifest(device).get(identifier)
    if found is None or found.kind != kind:
        raise ProtocolError(404, f"DeclarativeManagement: no {kind} {identifier!r} for this device")
    return json_reply(
        {
            "Type": found.type,
            "Identifier": found.identifier,
            "ServerToken": found.server_token,
            "Payload": found.payload,
        }
    )


def advertised_revision(device: Device, identifier: str) -> DeclarationRevision | None:
    """The revision of `identifier` the device's last declaration-items answer named."""
    sync = DeviceDeclarations.objects.filter(device=device).only("advertised").first()
    token = (sync.advertised or {}).get(identifier) if sync is not None else None
    if not token:
        return None
    return DeclarationRevision.objects.filter(identifier=identifier, server_token=token).first()


def status(device: Device, endpoint: str, data: bytes | None) -> Reply:
    record_status(device, data)
    return Reply(content_type=JSON)


def handle(device: Device, endpoint: str, data: bytes | None) -> Reply:
    """Answer one DeclarativeManagement message of `device` for `endpoint`."""
    endpoint = endpoint.strip("/")
    if endpoint == "tokens":
        return tokens(device, endpoint)
    if endpoint == "declaration-items":
        return declaration_items(device, endpoint)
    if endpoint == "status":
        return status(device, endpoint, data)
    if endpoint.startswith("declaration/"):
        return declaration(device, endpoint)
    raise ProtocolError(400, f"DeclarativeManagement: unknown Endpoint {endpoint!r}")
