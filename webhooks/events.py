"""Event bodies in MicroMDM's webhook format, the one NanoMDM emits too (its
`service/microwebhook`), so that the consumers admins already run work unchanged:

    {"topic": "mdm.Authenticate", "event_id": "<uuid>", "created_at": "<RFC 3339>",
     "checkin_event": {"udid": "...", "url_params": {...}, "raw_payload": "<base64 plist>"}}

    {"topic": "mdm.Connect", "event_id": ..., "created_at": ...,
     "acknowledge_event": {"udid": "...", "status": "Acknowledged", "command_uuid": "...",
                           "url_params": {...}, "raw_payload": "<base64 plist>"}}

A User Enrollment is named by `enrollment_id` instead of `udid`; `command_uuid` is left out of
an Idle report. The portal's own events (topics `portal.*`) carry `portal_event` instead, an
object of plain JSON. `raw_payload` is the device's request body exactly as it arrived, except
that secrets never leave the server: a TokenUpdate's UnlockToken and a SetBootstrapToken's
BootstrapToken are taken out (the message is then re-encoded as an XML plist without them).
"""

import base64
import datetime as dt
import json
import plistlib
import uuid
from typing import Any


def new_event_id() -> str:
    return str(uuid.uuid4())


def rfc3339(moment: dt.datetime) -> str:
    """UTC, with a Z, as Go's time.Time marshals."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _identity(message: dict) -> dict:
    if "UDID" in message:
        return {"udid": message["UDID"]}
    if "EnrollmentID" in message:
        return {"enrollment_id": message["EnrollmentID"]}
    return {}


# Keys whose values are secrets (a master passcode, the bootstrap token): never sent out.
SECRET_KEYS = frozenset({"UnlockToken", "BootstrapToken"})


def _raw(raw: bytes | None, message: dict) -> str:
    if raw is None or SECRET_KEYS & message.keys():
        # Re-encoded: the secrets taken out, or no original bytes (a message without HTTP).
        raw = plistlib.dumps({k: v for k, v in message.items() if k not in SECRET_KEYS})
    return base64.b64encode(raw).decode("ascii")


def checkin_event(message: dict, raw: bytes | None, url_params: dict | None) -> dict:
    return {
        **_identity(message),
        "url_params": dict(url_params or {}),
        "raw_payload": _raw(raw, message),
    }


def acknowledge_event(report: dict, raw: bytes | None, url_params: dict | None) -> dict:
    event: dict[str, Any] = {**_identity(report), "status": report.get("Status", "")}
    if report.get("CommandUUID"):
        event["command_uuid"] = report["CommandUUID"]
    event["url_params"] = dict(url_params or {})
    event["raw_payload"] = _raw(raw, report)
    return event


def body(topic: str, event_id: str, created_at: dt.datetime, section: str, content: dict) -> bytes:
    """The JSON every webhook receives for this event (signed as these exact bytes)."""
    document = {
        "topic": topic,
        "event_id": event_id,
        "created_at": rfc3339(created_at),
        section: content,
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


def section_of(topic: str) -> str:
    if topic == "mdm.Connect":
        return "acknowledge_event"
    return "checkin_event" if topic.startswith("mdm.") else "portal_event"
