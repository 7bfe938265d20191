"""A stand-in of Apple's DEP API (mdmenrollment.apple.com) for tests: a real HTTP server on
127.0.0.1 in a thread. No test reaches Apple; point MDM_DEP_URL at `.url`.

    standin = DepStandIn().start()            # or: with DepStandIn() as standin:
    standin.add_device("C02TEST0001")         # an "added" event, and in every later fetch
    server.consumer_key = standin.credentials["consumer_key"]   # ... (or a server token)
    standin.stop()                            # the port is closed; start() again reopens it

It behaves as Apple documents, and as Apple is seen to behave:
- GET /session checks the OAuth 1.0a signature (HMAC-SHA1, realm ADM, each nonce once) with
  `credentials` and answers {"auth_session_token"}; every other request needs a live session
  in X-ADM-Auth-Session, else 401 UNAUTHORIZED.
- POST /server/devices (fetch) pages through the devices as they were when the fetch began,
  `limit` (or `page_size`) at a time, with cursor and more_to_follow; a finished fetch's cursor
  is EXHAUSTED_CURSOR for fetch and starts /devices/sync, which answers the events after its
  cursor with op_type added, modified or deleted. An unknown cursor is 400 INVALID_CURSOR, one
  that `expire_cursors()` expired 400 EXPIRED_CURSOR.
- POST /profile checks the profile (profile_name; an https url; anchor_certs base64 DER; the
  flags booleans) and answers a profile_uuid; PUT /profile/devices answers per serial (SUCCESS
  for its devices, NOT_ACCESSIBLE for others, or what `assign_results` says) and the devices
  then show profile_status "assigned" and the profile_uuid in fetch, sync and details (a
  "modified" event); DELETE /profile/devices removes it. GET /account, POST /devices (details),
  POST /devices/disown (per serial; a disowned device is gone, a "deleted" event).

Knobs: `fail(status, body, times=, path=, retry_after=)` answers the next requests so (status 0
drops the connection unanswered); `expire_sessions()`; `rotate_sessions` (each answer carries
a new X-ADM-Auth-Session, the old one dies); `echo_cursor` (a request with a cursor gets that
same cursor back with more_to_follow true: the loop case); `expire_cursors()`; `page_size`;
`assign_results`. Every request is recorded in `requests` (method, path, headers, JSON body).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849 import utils as oauth_utils

BOOLEAN_KEYS = (
    "is_supervised",
    "is_mandatory",
    "is_mdm_removable",
    "await_device_configured",
    "auto_advance_setup",
    "allow_pairing",
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the decoded JSON, or None


@dataclass
class Failure:
    status: int
    body: str
    times: int
    path: str | None
    retry_after: str | None


class Answer(Exception):
    """An error answer: HTTP status and Apple's bare error code as the body."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status, self.code = status, code


class DepStandIn:
    def __init__(self) -> None:
        self.credentials = {
            "consumer_key": "CK_" + secrets.token_hex(16),
            "consumer_secret": "CS_" + secrets.token_hex(16),
            "access_token": "AT_" + secrets.token_hex(16),
            "access_secret": "AS_" + secrets.token_hex(16),
        }
        self.account = {
            "server_name": "Stand-in MDM",
            "server_uuid": str(uuid.uuid4()).upper(),
            "admin_id": "admin@example.org",
            "org_name": "Example School",
            "org_email": "it@example.org",
            "org_phone": "+1 555 0100",
            "org_address": "1 Example Way",
            "org_id": "1234567",
            "org_type": "edu",
            "org_version": "v2",
        }
        self.devices: dict[str, dict] = {}
        self.events: list[dict] = []  # each a device with op_type and op_date; seq = index + 1
        self.profiles: dict[str, dict] = {}
        self.assign_results: dict[str, str] = {}
        self.echo_cursor = False
        self.rotate_sessions = False
        self.page_size: int | None = None
        self.requests: list[Recorded] = []
        self.sessions: set[str] = set()
        self.sessions_issued = 0
        self.port = 0
        self._cursors: dict[str, dict] = {}
        self._expired: set[str] = set()
        self._nonces: set[str] = set()
        self._failures: list[Failure] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- running --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DepStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so stop() really cuts every client off.
            def _any(self) -> None:
                standin._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815 - http.server's names

            def log_message(self, format, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll: stop() (which waits for it) in every test's teardown stays quick.
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DepStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- knobs ----------------------------------------------------------------------------

    def add_device(self, serial: str, **fields: Any) -> dict:
        """A device newly assigned to this server in ABM (an "added" event)."""
        device = {
            "serial_number": serial,
            "model": "iPad (10th generation)",
            "description": "IPAD WI-FI 64GB SILVER",
            "color": "SILVER",
            "asset_tag": "",
            "os": "iOS",
            "device_family": "iPad",
            "profile_status": "empty",
            "device_assigned_date": now(),
            "device_assigned_by": "admin@example.org",
            **fields,
        }
        with self._lock:
            self.devices[serial] = device
            self._event("added", device)
        return device

    def modify_device(self, serial: str, **fields: Any) -> None:
        with self._lock:
            self.devices[serial].update(fields)
            self._event("modified", self.devices[serial])

    def delete_device(self, serial: str) -> None:
        """The device is released from this server in ABM (a "deleted" event)."""
        with self._lock:
            self._event("deleted", self.devices.pop(serial))

    def fail(
        self,
        status: int,
        body: str = "",
        *,
        times: int = 1,
        path: str | None = None,
        retry_after: int | str | None = None,
    ) -> None:
        """The next `times` requests (to `path`; without one, any but /session) get this
        answer instead; status 0 closes the connection without one."""
        ra = None if retry_after is None else str(retry_after)
        with self._lock:
            self._failures.append(Failure(status, body, times, path, ra))

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def expire_cursors(self) -> None:
        with self._lock:
            self._expired.update(self._cursors)

    def paths(self) -> list[str]:
        """ "METHOD /path" of every request so far."""
        return [f"{r.method} {r.path}" for r in self.requests]

    # --- the HTTP side ----------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {name.lower(): value for name, value in http.headers.items()}
        with self._lock:
            self.requests.append(Recorded(http.command, parts.path, headers, body))
            failure = self._take_failure(parts.path)
        if failure is not None and failure.status == 0:
            http.close_connection = True
            return
        extra: dict[str, str] = {}
        try:
            if failure is not None:
                if failure.retry_after is not None:
                    extra["Retry-After"] = failure.retry_after
                raise Answer(failure.status, failure.body)
            with self._lock:
                if parts.path == "/session":
                    status, answer = 200, self._session(http, headers)
                else:
                    extra.update(self._check_session(headers))
                    if raw and not headers.get("content-type", "").startswith("application/json"):
                        raise Answer(415, "UNSUPPORTED_MEDIA_TYPE")
                    status, answer = 200, self._route(http.command, parts, body)
        except Answer as error:
            status, answer = error.status, error.code
        self._reply(http, status, answer, extra)

    @staticmethod
    def _reply(http, status: int, answer: Any, headers: dict[str, str]) -> None:
        text = answer if isinstance(answer, str) else json.dumps(answer)
        payload = text.encode()
        http.send_response(status)
        kind = "text/plain;charset=UTF8" if isinstance(answer, str) else "application/json"
        http.send_header("Content-Type", kind)
        http.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)

    def _take_failure(self, path: str) -> Failure | None:
        for failure in self._failures:
            if failure.path == path or (failure.path is None and path != "/session"):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _session(self, http: BaseHTTPRequestHandler, headers: dict[str, str]) -> dict:
        """Verify the OAuth 1.0a signature, then issue a session token."""
        params = oauth_utils.parse_authorization_header(headers.get("authorization", "")) or []
        fields = dict(params)
        wanted = self.credentials
        if (
            fields.get("realm") != "ADM"
            or fields.get("oauth_signature_method") != "HMAC-SHA1"
            or fields.get("oauth_consumer_key") != wanted["consumer_key"]
            or fields.get("oauth_token") != wanted["access_token"]
            or abs(time.time() - int(fields.get("oauth_timestamp") or 0)) > 300
            or fields.get("oauth_nonce", "") in self._nonces
        ):
            raise Answer(401, "UNAUTHORIZED")
        request = OAuthRequest(f"http://{headers.get('host', '')}{http.path}", "GET")
        request.params = [(k, v) for k, v in params if k not in ("realm", "oauth_signature")]
        request.signature = unquote(fields.get("oauth_signature", ""))
        secret, token_secret = wanted["consumer_secret"], wanted["access_secret"]
        if not oauth_signature.verify_hmac_sha1(request, secret, token_secret):
            raise Answer(401, "UNAUTHORIZED")
        self._nonces.add(fields["oauth_nonce"])
        return {"auth_session_token": self._new_session()}

    def _new_session(self) -> str:
        token = "session-" + secrets.token_hex(16)
        self.sessions.add(token)
        self.sessions_issued += 1
        return token

    def _check_session(self, headers: dict[str, str]) -> dict[str, str]:
        token = headers.get("x-adm-auth-session", "")
        if token not in self.sessions:
            raise Answer(401, "UNAUTHORIZED")
        if not self.rotate_sessions:
            return {}
        self.sessions.discard(token)
        return {"X-ADM-Auth-Session": self._new_session()}

    def _route(self, method: str, parts, body: Any) -> Any:
        routes = {
            ("GET", "/account"): lambda: self.account,
            ("POST", "/server/devices"): lambda: self._fetch(self._object(body)),
            ("POST", "/devices/sync"): lambda: self._sync(self._object(body)),
            ("POST", "/devices"): lambda: self._details(self._serials(body)),
            ("POST", "/devices/disown"): lambda: self._disown(self._serials(body)),
            ("POST", "/profile"): lambda: self._define(self._object(body)),
            ("GET", "/profile"): lambda: self._profile(parse_qs(parts.query)),
            ("PUT", "/profile/devices"): lambda: self._assign(self._object(body)),
            ("DELETE", "/profile/devices"): lambda: self._remove(self._serials(body)),
        }
        route = routes.get((method, parts.path))
        if route is None:
            known = {path for _, path in routes}
            raise Answer(405 if parts.path in known else 404, "NOT_FOUND")
        return route()

    @staticmethod
    def _object(body: Any) -> dict:
        if not isinstance(body, dict):
            raise Answer(400, "MALFORMED_REQUEST_BODY")
        return body

    def _serials(self, body: Any) -> list[str]:
        serials = self._object(body).get("devices")
        if not isinstance(serials, list) or not all(isinstance(s, str) for s in serials):
            raise Answer(400, "MALFORMED_REQUEST_BODY")
        return serials

    # --- devices ------------------------------------------------------------------------------

    def _event(self, op_type: str, device: dict) -> None:
        self.events.append({**device, "op_type": op_type, "op_date": now()})

    def _issue(self, state: dict) -> str:
        cursor = secrets.token_hex(12)
        self._cursors[cursor] = state
        return cursor

    def _cursor(self, cursor: Any) -> dict:
        if not isinstance(cursor, str) or cursor not in self._cursors:
            raise Answer(400, "INVALID_CURSOR")
        if cursor in self._expired:
            raise Answer(400, "EXPIRED_CURSOR")
        return self._cursors[cursor]

    def _limit(self, body: dict) -> int:
        limit = body.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise Answer(400, "INVALID_LIMIT")
        return min(limit, self.page_size or limit)

    def _fetch(self, body: dict) -> dict:
        given = body.get("cursor")
        if given:
            state = self._cursor(given)
            if state["fetch"] is None or state["offset"] >= len(state["fetch"]):
                raise Answer(400, "EXHAUSTED_CURSOR")
        else:  # a new fetch: the devices as they are now, and the events so far
            state = {"fetch": sorted(self.devices), "offset": 0, "seq": len(self.events)}
        end = state["offset"] + self._limit(body)
        page = [self.devices[s] for s in state["fetch"][state["offset"] : end] if s in self.devices]
        more = end < len(state["fetch"])
        cursor = self._issue({**state, "offset": end})
        if self.echo_cursor and given:
            cursor, more = given, True
        return {"devices": page, "cursor": cursor, "more_to_follow": more, "fetched_until": now()}

    def _sync(self, body: dict) -> dict:
        given = body.get("cursor")
        if not given:
            raise Answer(400, "CURSOR_REQUIRED")
        seq = self._cursor(given)["seq"]
        page = self.events[seq : seq + self._limit(body)]
        cursor = self._issue({"fetch": None, "offset": 0, "seq": seq + len(page)})
        more = seq + len(page) < len(self.events)
        if self.echo_cursor:
            cursor, more = given, True
        return {"devices": page, "cursor": cursor, "more_to_follow": more, "fetched_until": now()}

    def _details(self, serials: list[str]) -> dict:
        return {
            "devices": {
                s: {**self.devices[s], "response_status": "SUCCESS"}
                if s in self.devices
                else {"response_status": "NOT_FOUND"}
                for s in serials
            }
        }

    def _disown(self, serials: list[str]) -> dict:
        answers = {}
        for serial in serials:
            answers[serial] = "SUCCESS" if serial in self.devices else "NOT_ACCESSIBLE"
            if serial in self.devices:
                self.delete_device(serial)
        return {"devices": answers}

    # --- profiles -----------------------------------------------------------------------------

    def _define(self, profile: dict) -> dict:
        name, url = profile.get("profile_name"), profile.get("url")
        if not isinstance(name, str) or not name.strip():
            raise Answer(400, "PROFILE_NAME_REQUIRED")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise Answer(400, "CONFIG_URL_INVALID")
        if any(not isinstance(profile.get(k, False), bool) for k in BOOLEAN_KEYS):
            raise Answer(400, "FLAGS_INVALID")
        skip = profile.get("skip_setup_items", [])
        if not isinstance(skip, list) or not all(isinstance(item, str) for item in skip):
            raise Answer(400, "SKIP_SETUP_ITEMS_INVALID")
        try:
            for der in profile.get("anchor_certs", []):
                x509.load_der_x509_certificate(base64.b64decode(der, validate=True))
        except (TypeError, ValueError):
            raise Answer(400, "ANCHOR_CERTS_INVALID") from None
        profile_uuid = uuid.uuid4().hex.upper()
        self.profiles[profile_uuid] = profile
        devices = profile.get("devices") or []
        return {"profile_uuid": profile_uuid, "devices": self._give(profile_uuid, devices)}

    def _profile(self, query: dict) -> dict:
        profile_uuid = (query.get("profile_uuid") or [""])[0]
        if profile_uuid not in self.profiles:
            raise Answer(400, "PROFILE_NOT_FOUND")
        return self.profiles[profile_uuid]

    def _assign(self, body: dict) -> dict:
        profile_uuid = body.get("profile_uuid")
        if profile_uuid not in self.profiles:
            raise Answer(400, "PROFILE_NOT_FOUND")
        answers = self._give(profile_uuid, self._serials(body))
        return {"profile_uuid": profile_uuid, "devices": answers}

    def _give(self, profile_uuid: str, serials: list[str]) -> dict[str, str]:
        answers = {}
        for serial in serials:
            answer = self.assign_results.get(serial)
            answer = answer or ("SUCCESS" if serial in self.devices else "NOT_ACCESSIBLE")
            answers[serial] = answer
            if answer == "SUCCESS" and serial in self.devices:
                self.modify_device(
                    serial,
                    profile_status="assigned",
                    profile_uuid=profile_uuid,
                    profile_assign_time=now(),
                )
        return answers

    def _remove(self, serials: list[str]) -> dict:
        answers = {}
        for serial in serials:
            answers[serial] = "SUCCESS" if serial in self.devices else "NOT_ACCESSIBLE"
            if serial in self.devices:
                self.modify_device(serial, profile_status="removed", profile_uuid="")
        return {"devices": answers}
