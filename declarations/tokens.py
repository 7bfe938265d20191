"""The two tokens of declarative sync, each a SHA-256 over canonical JSON.

- A declaration's ServerToken covers its whole content (Type, Identifier, Payload): Apple asks
  servers to "compute the token over the entire declaration content to ensure the value always
  changes whenever there's any change to the content". Same content, same token, on every
  server process and after a restart.
- A device's DeclarationsToken covers the manifest it should have: the (Identifier,
  ServerToken) pairs, sorted. It changes exactly when a declaration joins or leaves the set or
  one of them changes.
"""

import hashlib
import json
from collections.abc import Iterable


def canonical_json(value) -> bytes:
    """One byte form for equal JSON values: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def server_token(declaration_type: str, identifier: str, payload: dict) -> str:
    content = {"Type": declaration_type, "Identifier": identifier, "Payload": payload}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def declarations_token(manifest: Iterable[tuple[str, str]]) -> str:
    """The token of a manifest given as (identifier, server_token) pairs, in any order."""
    return hashlib.sha256(canonical_json(sorted(map(list, manifest)))).hexdigest()


# The token of a device that should have nothing (what a device without a sync row has).
EMPTY_TOKEN = declarations_token([])
