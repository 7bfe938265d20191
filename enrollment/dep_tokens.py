"""Automated Device Enrollment server tokens: the DEP servers the portal is, and their tokens.

One DepServer per MDM server in Apple Business Manager (or School Manager), each with its own
key pair (certs.DepTokenKey): `create_server` makes both, `token_certificate_pem` is what the
admin uploads in ABM under that MDM server, and `import_token` reads the server token (.p7m)
ABM then gives: the OAuth consumer key and secret, access token and secret, and the access
token's expiry. The secrets are stored encrypted at rest; `oauth_credentials` hands them to the
DEP client. Renewal is a new import to the same server: its devices, profiles and sync cursor
stay. The UI, the API and `mdm_dep` all call these functions.

Each server's token expiry joins the certificate-expiry inventory (`register`, from
EnrollmentConfig.ready), so the expiry sweep warns and alerts and the dashboard shows it.
"""

import datetime as dt
import json
import re
import shlex
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from django.db import IntegrityError, transaction
from django.utils import timezone

from certs.dep_keys import DepTokenError, create_token_key, decrypt_server_token
from certs.expiry import ExpiryEntry, expiry_entry, register_inventory_source
from mdm_portal.audit import actor_name, audit

from .dep_models import DepServer

__all__ = [
    "DepTokenError",
    "ServerToken",
    "create_server",
    "find_server",
    "import_token",
    "oauth_credentials",
    "parse_server_token",
    "token_certificate_pem",
]

TOKEN_KIND = "dep-token"
TOKEN_LABEL = "ADE server token"
TOKEN_STRINGS = ("consumer_key", "consumer_secret", "access_token", "access_secret")
# The longest value each credential may have: the model's columns (the secrets are encrypted,
# so any length fits; a value far longer than Apple's ~130 characters is not a token).
MAX_LENGTHS = {
    "consumer_key": 200,
    "access_token": 200,
    "consumer_secret": 1000,
    "access_secret": 1000,
}
MESSAGE = re.compile(rb"-----BEGIN MESSAGE-----(.*?)-----END MESSAGE-----", re.DOTALL)
ABM_HINT = "download a new server token in Apple Business Manager and import it"


@dataclass(frozen=True)
class ServerToken:
    """What a server token holds; the secrets are left out of its repr (logs, tracebacks)."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    access_token: str
    access_secret: str = field(repr=False)
    access_token_expiry: dt.datetime


def _message_json(content: bytes) -> bytes:
    """The JSON between the MESSAGE markers of the decrypted MIME entity.

    The body is read through the MIME headers (its transfer encoding, if any), and its lines
    are joined without separators, as NanoDEP reads it: a writer that wraps the JSON at a line
    length then gives the same object as one that does not.
    """
    body = content
    if not content.lstrip().startswith(b"-----BEGIN"):
        entity = message_from_bytes(content, policy=policy.compat32)
        body = entity.get_payload(decode=True) or b""
    found = MESSAGE.search(body)
    if found is None:
        raise DepTokenError(
            "this server token holds no -----BEGIN MESSAGE----- block: it is not one Apple "
            "Business Manager made; download it again"
        )
    return b"".join(found.group(1).splitlines())


def _expiry(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise DepTokenError("this server token's access_token_expiry is not a date")
    try:
        expiry = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise DepTokenError(
            f"this server token's access_token_expiry {value[:40]!r} is not a date "
            "(Apple writes e.g. 2027-12-01T14:00:00Z)"
        ) from None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=dt.UTC)  # Apple's is in UTC


def parse_server_token(content: bytes) -> ServerToken:
    """The credentials in a decrypted server token (certs.dep_keys.decrypt_server_token),
    every key checked: present, a non-empty string, the expiry a date."""
    try:
        data = json.loads(_message_json(content))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DepTokenError("this server token's MESSAGE block is not JSON") from None
    if not isinstance(data, dict):
        raise DepTokenError("this server token's MESSAGE block is not a JSON object")
    missing = [key for key in (*TOKEN_STRINGS, "access_token_expiry") if key not in data]
    if missing:
        raise DepTokenError(f"this server token lacks {', '.join(missing)}")
    for key in TOKEN_STRINGS:
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise DepTokenError(f"this server token's {key} is not a non-empty string")
        if len(value) > MAX_LENGTHS[key]:
            raise DepTokenError(f"this server token's {key} is longer than {MAX_LENGTHS[key]}")
    return ServerToken(
        consumer_key=data["consumer_key"],
        consumer_secret=data["consumer_secret"],
        access_token=data["access_token"],
        access_secret=data["access_secret"],
        access_token_expiry=_expiry(data["access_token_expiry"]),
    )


def create_server(name: str, *, actor, address: str | None = None) -> DepServer:
    """A new DEP server named `name` with its own key pair; its certificate is what the admin
    uploads in ABM (token_certificate_pem)."""
    name = (name or "").strip()
    if not name:
        raise DepTokenError("a DEP server needs a name (e.g. the MDM server's name in ABM)")
    if len(name) > DepServer._meta.get_field("name").max_length:
        raise DepTokenError("a DEP server's name has 150 characters at most")
    if DepServer.objects.filter(name=name).exists():
        raise DepTokenError(f"a DEP server named {name!r} already exists")
    try:
        with transaction.atomic():
            key = create_token_key(label=name)
            server = DepServer.objects.create(name=name, key=key, created_by=actor_name(actor))
            audit(
                "dep.server_created",
                actor=actor,
                target=name,
                address=address,
                certificate_sha256=key.sha256,
            )
    except IntegrityError:  # created meanwhile by someone else
        raise DepTokenError(f"a DEP server named {name!r} already exists") from None
    return server


def token_certificate_pem(server: DepServer) -> str:
    """The certificate (PEM) to upload in ABM under the MDM server `server` stands for."""
    return server.key.certificate_pem


def find_server(name: str | None = None) -> DepServer:
    """The server named `name`, or without a name the only one there is."""
    if name:
        server = DepServer.objects.select_related("key").filter(name=name).first()
        if server is None:
            known = ", ".join(DepServer.objects.order_by("name").values_list("name", flat=True))
            raise DepTokenError(f"no DEP server named {name!r} (known: {known or 'none'})")
        return server
    servers = list(DepServer.objects.select_related("key").order_by("name")[:2])
    if not servers:
        raise DepTokenError("no DEP server yet: create one with `mdm_dep token-certificate`")
    if len(servers) > 1:
        known = ", ".join(DepServer.objects.order_by("name").values_list("name", flat=True))
        raise DepTokenError(f"there are several DEP servers: name one ({known})")
    return servers[0]


def read_server_token(server: DepServer, p7m: bytes) -> ServerToken:
    """The credentials of a server token (.p7m) enveloped to `server`'s key; nothing stored."""
    return parse_server_token(decrypt_server_token(server.key, p7m))


def import_token(server: DepServer, p7m: bytes, *, actor, address: str | None = None) -> DepServer:
    """Read a server token (.p7m) for `server` and store its credentials (the secrets
    encrypted); returns the updated server. A renewal replaces the credentials and keeps the
    server's devices, profiles and cursor. A new token means a new OAuth session, so the
    session is dropped. Refused with DepTokenError, nothing changed: a file that is not a
    token of this server, an expired token, or one older than the token already imported
    (ABM invalidates a token when it gives a new one, so the older file no longer works).
    """
    token = read_server_token(server, p7m)
    now = timezone.now()
    if token.access_token_expiry <= now:
        raise DepTokenError(
            f"this server token expired on {token.access_token_expiry:%Y-%m-%d %H:%M} UTC: "
            f"{ABM_HINT}"
        )
    with transaction.atomic():
        locked = DepServer.objects.select_for_update().get(pk=server.pk)
        current = locked.access_token_expiry
        if locked.token_imported_at is not None and current and token.access_token_expiry < current:
            raise DepTokenError(
                f"this server token (valid until {token.access_token_expiry:%Y-%m-%d}) is older "
                f"than the one imported for {locked.name} (valid until {current:%Y-%m-%d}), "
                "which replaced it in Apple Business Manager: import the newest download"
            )
        renewal = locked.token_imported_at is not None
        locked.consumer_key = token.consumer_key
        locked.consumer_secret = token.consumer_secret.encode()
        locked.access_token = token.access_token
        locked.access_secret = token.access_secret.encode()
        locked.access_token_expiry = token.access_token_expiry
        locked.token_imported_at = now
        locked.session_token = None
        locked.save(
            update_fields=[
                "consumer_key",
                "consumer_secret",
                "access_token",
                "access_secret",
                "access_token_expiry",
                "token_imported_at",
                "session_token",
            ]
        )
        audit(
            "dep.token_imported",
            actor=actor,
            target=locked.name,
            address=address,
            renewal=renewal,
            access_token_expiry=token.access_token_expiry.isoformat(),
        )
    return locked


def oauth_credentials(server: DepServer) -> dict[str, str]:
    """The OAuth 1.0a credentials of `server`'s token, decrypted, for the DEP client:
    consumer_key, consumer_secret, access_token, access_secret. DepTokenError when no token
    is imported or it has expired (Apple would refuse it anyway; this says what to do)."""
    if server.token_imported_at is None or not server.consumer_secret or not server.access_secret:
        raise DepTokenError(
            f"no server token imported for the DEP server {server.name!r}: "
            "run `mdm_dep import-token FILE.p7m`"
        )
    if server.access_token_expiry is not None and server.access_token_expiry <= timezone.now():
        raise DepTokenError(
            f"the server token of {server.name!r} expired on "
            f"{server.access_token_expiry:%Y-%m-%d}: {ABM_HINT}"
        )
    return {
        "consumer_key": server.consumer_key,
        "consumer_secret": bytes(server.consumer_secret).decode(),
        "access_token": server.access_token,
        "access_secret": bytes(server.access_secret).decode(),
    }


def token_expiry(now: dt.datetime, thresholds: list[int]) -> list[ExpiryEntry]:
    """The expiry inventory's server tokens, one per DEP server with a token (one query)."""
    rows = DepServer.objects.filter(access_token_expiry__isnull=False).values_list(
        "name", "server_name", "org_name", "access_token_expiry"
    )
    return [
        expiry_entry(
            TOKEN_KIND,
            name,
            _subject(name, server_name, org_name),
            expiry,
            now,
            thresholds,
            hint=f"{ABM_HINT}: mdm_dep import-token FILE.p7m --name {shlex.quote(name)}",
        )
        for name, server_name, org_name, expiry in rows
    ]


def _subject(name: str, server_name: str, org_name: str) -> str:
    """The portal's name for the server, and Apple's (from /account, once synced)."""
    apple = ", ".join(part for part in (server_name, org_name) if part)
    return f"{name} (in ABM: {apple})" if apple else name


def register() -> None:
    """Called by EnrollmentConfig.ready: server tokens join the certificate inventory."""
    register_inventory_source(token_expiry, kinds={TOKEN_KIND: TOKEN_LABEL})
