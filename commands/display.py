"""Commands and results as a person reads them: plist values as indented JSON, data as its
size, and secrets never: text or data under a key that holds a secret (mdm_portal.masking: a
PIN, a passcode, a password, a token, a code that unlocks something) is shown masked, in
payloads and results alike.
"""

import json
from datetime import date, datetime
from typing import Any

from mdm_portal.masking import MASKED, is_secret_key

from .history import ENVELOPE_KEYS


def _secret(key: str, value: Any) -> bool:
    """Masked: a non-empty value under a secret key, all of it, but for booleans and numbers."""
    return is_secret_key(key) and not isinstance(value, bool | int | float) and bool(value)


def readable(value: Any) -> Any:
    """`value` (plist types) as JSON-safe data with secrets masked and data as its size."""
    if isinstance(value, dict):
        return {
            str(key): MASKED if _secret(str(key), item) else readable(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [readable(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<data, {len(bytes(value)):,} bytes>"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def as_text(value: Any) -> str:
    """Readable, indented text of a plist value (what the pages show in <pre>)."""
    return json.dumps(readable(value), indent=2, ensure_ascii=False, sort_keys=False)


def command_text(command: dict) -> str:
    """The Command dictionary without its RequestType, readable; "" when it has no keys."""
    body = {key: item for key, item in command.items() if key != "RequestType"}
    return as_text(body) if body else ""


def result_text(result: dict | None) -> str:
    """What a device answered, minus the envelope (Status, UDID, ...), readable; "" if nothing."""
    if not result:
        return ""
    body = {key: item for key, item in result.items() if key not in ENVELOPE_KEYS}
    return as_text(body) if body else ""


def error_lines(error_chain: list | None) -> list[str]:
    """An ErrorChain as lines: "domain code: description"."""
    lines = []
    for error in error_chain or []:
        if not isinstance(error, dict):
            lines.append(str(error))
            continue
        where = " ".join(str(error[k]) for k in ("ErrorDomain", "ErrorCode") if k in error)
        text = error.get("LocalizedDescription") or error.get("USEnglishDescription") or ""
        lines.append(f"{where}: {text}" if where and text else where or str(text))
    return lines
