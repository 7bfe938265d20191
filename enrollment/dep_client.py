"""A client of Apple's DEP API (Device Assignment: mdmenrollment.apple.com) for one DEP server.

Authentication: GET /session signed with OAuth 1.0a (HMAC-SHA1 over the server token's consumer
key and secret and its access token and secret; oauthlib signs) answers an auth_session_token.
Every other request carries it in X-ADM-Auth-Session, with X-Server-Protocol-Version: 3. The
token is kept, encrypted, in DepServer.session_token so that every process shares one session;
a response carrying a new X-ADM-Auth-Session replaces it.

Apple ends a session with 401, or with a 403 whose body is FORBIDDEN. Then, and only then, the
client takes a new session and sends the request once more. Any other 403 (terms not accepted,
a revoked token, ...) is an answer a new session would not change. 429 and 5xx are retried with
a doubling wait, honouring Retry-After within MDM_DEP_RETRY_MAX_SECONDS; so are network
errors, which end as DepError(status=0). Every failure is a DepError: callers catch one type.
"""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings
from oauthlib.oauth1 import Client as OAuth1Client

from .dep_models import DepServer
from .dep_tokens import DepTokenError, oauth_credentials

PROTOCOL_VERSION = "3"
JSON_TYPE = "application/json;charset=UTF8"
SESSION_HEADER = "X-ADM-Auth-Session"
PAGE_LIMIT = 1000  # devices per fetch/sync page: Apple's maximum
# Tests replace this (monkeypatch) to see the waits without spending them.
sleep = time.sleep


class DepError(Exception):
    """Apple's refusal (HTTP status and its error code, e.g. 400 EXPIRED_CURSOR), or status 0
    for a network error after the retries."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.status == 0 and self.code == "NETWORK":
            return f"cannot reach Apple's DEP API: {self.message}"
        if self.status == 0:
            return self.message
        text = f"DEP API answered {self.status} {self.code}"
        return f"{text}: {self.message}" if self.message and self.message != self.code else text


def _credentials(server: DepServer) -> dict[str, str]:
    """The server token's OAuth credentials; a missing or expired token is a DepError too."""
    try:
        return oauth_credentials(server)
    except DepTokenError as exc:
        code = "NO_TOKEN" if server.token_imported_at is None else "TOKEN_EXPIRED"
        raise DepError(0, code, str(exc)) from None


def error_from(response: httpx.Response) -> DepError:
    """Apple's error bodies are a bare code (EXPIRED_CURSOR, sometimes quoted) or JSON with
    code and message; anything else is kept, shortened, as the message."""
    text = response.text.strip()
    code, message = "", text[:300]
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or body.get("error") or "")
        message = str(body.get("message") or body.get("error_description") or code)[:300]
    elif isinstance(body, str):
        code = message = body.strip()[:100]
    elif text and len(text) <= 100 and text.replace("_", "").isalnum() and text.isupper():
        code = text
    return DepError(response.status_code, code or f"HTTP_{response.status_code}", message)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_session_over(response: httpx.Response) -> bool:
    """401, or 403 whose body is FORBIDDEN: Apple no longer knows the session."""
    if response.status_code == 401:
        return True
    return response.status_code == 403 and error_from(response).code == "FORBIDDEN"


class DepClient:
    """Apple's DEP API for one DepServer. Use as a context manager, or call close()."""

    def __init__(self, server: DepServer, *, base_url: str | None = None) -> None:
        self.server = server
        self.base_url = (base_url or settings.MDM_DEP_URL).rstrip("/")
        self.retries = max(0, settings.MDM_DEP_RETRIES)
        self.http = httpx.Client(
            timeout=settings.MDM_DEP_TIMEOUT_SECONDS,
            headers={"User-Agent": "mdm-portal", "X-Server-Protocol-Version": PROTOCOL_VERSION},
        )

    def __enter__(self) -> DepClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- the endpoints ------------------------------------------------------------------

    def account(self) -> dict:
        """GET /account: the server's and the organization's names, uuid, email, ..."""
        return self._dict(self.request("GET", "/account"))

    def fetch_devices(self, cursor: str | None = None, *, limit: int = PAGE_LIMIT) -> dict:
        """POST /server/devices: every device of the server, a page at a time (cursor,
        more_to_follow, devices)."""
        body: dict[str, Any] = {"limit": limit}
        if cursor:
            body["cursor"] = cursor
        return self._page(self.request("POST", "/server/devices", body))

    def sync_devices(self, cursor: str, *, limit: int = PAGE_LIMIT) -> dict:
        """POST /devices/sync: what changed since `cursor` (devices with op_type)."""
        return self._page(self.request("POST", "/devices/sync", {"cursor": cursor, "limit": limit}))

    def device_details(self, serials: list[str]) -> dict[str, dict]:
        """POST /devices: details per serial (response_status NOT_FOUND for others' devices)."""
        return self._per_serial(self.request("POST", "/devices", {"devices": list(serials)}))

    def disown(self, serials: list[str]) -> dict[str, str]:
        """POST /devices/disown: SUCCESS, NOT_ACCESSIBLE or FAILED per serial. Irreversible."""
        return self._per_serial(self.request("POST", "/devices/disown", {"devices": serials}))

    def define_profile(self, profile: dict) -> dict:
        """POST /profile: defines a profile, answers its profile_uuid (and per-serial results
        for the devices listed in it)."""
        answer = self._dict(self.request("POST", "/profile", profile))
        if not isinstance(answer.get("profile_uuid"), str) or not answer["profile_uuid"]:
            raise DepError(200, "BAD_RESPONSE", "POST /profile answered no profile_uuid")
        return answer

    def assign_profile(self, profile_uuid: str, serials: list[str]) -> dict:
        """PUT /profile/devices: profile_uuid and devices (serial: SUCCESS, NOT_ACCESSIBLE,
        FAILED)."""
        body = {"profile_uuid": profile_uuid, "devices": list(serials)}
        answer = self._dict(self.request("PUT", "/profile/devices", body))
        self._per_serial(answer)
        return answer

    def remove_profile(self, serials: list[str]) -> dict[str, str]:
        """DELETE /profile/devices: the devices keep no profile (result per serial)."""
        body = {"devices": list(serials)}
        return self._per_serial(self.request("DELETE", "/profile/devices", body))

    # --- requests -----------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API request with the session: a new session on 401 / 403 FORBIDDEN, once.
        Answers the decoded JSON body (None when empty)."""
        content = None if body is None else json.dumps(body).encode()
        token = self._session_token() or self.new_session()
        renewed = False
        while True:
            headers = {SESSION_HEADER: token, "Accept": JSON_TYPE}
            if content is not None:
                headers["Content-Type"] = JSON_TYPE
            response = self._send(method, path, headers=headers, content=content)
            if _is_session_over(response) and not renewed:
                token, renewed = self.new_session(), True
                continue
            fresh = response.headers.get(SESSION_HEADER, "")
            if fresh and fresh != token:
                self._store_session(fresh)
            if not response.is_success:
                raise error_from(response)
            try:
                return response.json() if response.content else None
            except ValueError:
                raise DepError(response.status_code, "BAD_RESPONSE", "not JSON") from None

    def new_session(self) -> str:
        """GET /session, OAuth 1.0a signed; the auth_session_token is stored and returned."""
        credentials = _credentials(self.server)
        signer = OAuth1Client(
            credentials["consumer_key"],
            client_secret=credentials["consumer_secret"],
            resource_owner_key=credentials["access_token"],
            resource_owner_secret=credentials["access_secret"],
            signature_method="HMAC-SHA1",
            realm="ADM",
        )
        # A fresh nonce and timestamp per try: a retried /session is a new signed request.
        response = self._send(
            "GET", "/session", headers=lambda url: signer.sign(url, "GET")[1], content=None
        )
        if not response.is_success:
            raise error_from(response)
        try:
            token = response.json().get("auth_session_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise DepError(response.status_code, "BAD_RESPONSE", "/session gave no token")
        self._store_session(token)
        return token

    def _send(self, method: str, path: str, *, headers, content: bytes | None) -> httpx.Response:
        """Send, retrying network errors, 429 and 5xx with a doubling wait (Retry-After
        honoured). Answers the last response; a network error after the last try raises."""
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request(
                    method,
                    url,
                    headers=headers(url) if callable(headers) else headers,
                    content=content,
                )
            except httpx.TransportError as exc:
                if last:
                    why = str(exc) or type(exc).__name__
                    raise DepError(0, "NETWORK", f"{method} {path}: {why}") from None
                sleep(self._backoff(attempt))
                continue
            if response.status_code != 429 and response.status_code < 500:
                return response
            if last:
                return response
            wait = _retry_after(response)
            if wait is not None and wait > settings.MDM_DEP_RETRY_MAX_SECONDS:
                return response  # longer than a run should wait: the next run tries again
            sleep(self._backoff(attempt) if wait is None else wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(settings.MDM_DEP_RETRY_SECONDS * 2**attempt, settings.MDM_DEP_RETRY_MAX_SECONDS)

    # --- the session token, shared through the database ----------------------------------

    def _session_token(self) -> str:
        token = self.server.session_token
        return bytes(token).decode() if token else ""

    def _store_session(self, token: str) -> None:
        # Only this column: a sync run holds other fields of the same row in memory.
        self.server.session_token = token.encode()
        DepServer.objects.filter(pk=self.server.pk).update(session_token=token.encode())

    # --- answers ------------------------------------------------------------------------

    @staticmethod
    def _dict(answer: Any) -> dict:
        if not isinstance(answer, dict):
            raise DepError(200, "BAD_RESPONSE", "expected a JSON object")
        return answer

    def _page(self, answer: Any) -> dict:
        page = self._dict(answer)
        devices = page.get("devices") or []
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise DepError(200, "BAD_RESPONSE", "devices is not a list of objects")
        page["devices"] = devices
        page["more_to_follow"] = bool(page.get("more_to_follow"))
        page["cursor"] = str(page.get("cursor") or "")
        return page

    def _per_serial(self, answer: Any) -> dict:
        devices = self._dict(answer).get("devices") or {}
        if not isinstance(devices, dict):
            raise DepError(200, "BAD_RESPONSE", "devices is not an object keyed by serial")
        return devices
