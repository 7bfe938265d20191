"""An ACME client (RFC 8555) as an Apple device runs it for a `com.apple.security.acme`
payload, with the device-attest-01 challenge of draft-ietf-acme-device-attest.

The device reads the directory, takes a nonce, registers an account (an ES256 P-256 account
key, `termsOfServiceAgreed`), orders a certificate for one `permanent-identifier`, the
payload's ClientIdentifier, and answers the authorization's `device-attest-01` challenge with
`{"attObj": base64url(attestation object)}`: Apple's attestation of the device's key (made here
by the test attestation CA, simulator/attestation.py, from the challenge's token). Without
Attest it sends `{}` (or nothing, when the server already holds the authorization valid).
Then it finalizes with a CSR over the attested key (the payload's Subject; the secret
ClientIdentifier is left out, as the draft's privacy-preserving mode allows and Apple does),
waits for the order to become valid and downloads the chain; the leaf is its identity.

Every POST is a flattened JSON JWS (jwcrypto) whose protected header holds alg, nonce, url and
jwk (newAccount) or kid (the account URL); each response's Replay-Nonce is the next request's
nonce, and a badNonce refusal is retried once with the fresh nonce it carries (RFC 8555
6.5). A problem document, or any answer the flow cannot use, is an `AcmeError` naming the step,
the ACME error type and its detail.

`AcmeClient` is asynchronous over a `send(method, url, content=..., headers=...)` coroutine
(the simulated device's, which counts each request); `post` is the same signed POST for a
synchronous httpx client, for tests that speak ACME to the portal one request at a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk, jws

JOSE_CT = "application/jose+json"
PEM_CHAIN_CT = "application/pem-certificate-chain"
ERROR_PREFIX = "urn:ietf:params:acme:error:"
BAD_NONCE = ERROR_PREFIX + "badNonce"
CHALLENGE_TYPE = "device-attest-01"
IDENTIFIER_TYPE = "permanent-identifier"
POLL_TRIES = 30  # polls of an authorization or order before the device gives up
POLL_DELAY = 0.2  # seconds between them when the server sends no Retry-After
MAX_RETRY_AFTER = 10.0  # a longer Retry-After is waited this long (a simulation, not a week)

Send = Callable[..., Awaitable[httpx.Response]]
Attestation = Callable[[str], bytes]  # challenge token -> CBOR attestation object


class AcmeError(Exception):
    """The ACME server refused a step (a problem document) or answered what the flow cannot
    use. `problem_type` is the ACME error type (urn:ietf:params:acme:error:...) or ""."""

    def __init__(self, step: str, detail: str, problem_type: str = "", status: int | None = None):
        self.step = step
        self.detail = detail
        self.problem_type = problem_type
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        kind = self.problem_type.removeprefix(ERROR_PREFIX) or (
            f"HTTP {self.status}" if self.status else "unusable answer"
        )
        return f"{self.step}: {kind} ({self.detail})" if self.detail else f"{self.step}: {kind}"


# -- the pieces -----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def account_key() -> ec.EllipticCurvePrivateKey:
    """A new account key: P-256, for ES256."""
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key) -> dict:
    """The public JWK of `key` with only its required members (RFC 7638's thumbprint input)."""
    exported = jwk.JWK.from_pyca(key.public_key()).export_public(as_dict=True)
    return {name: exported[name] for name in ("kty", "crv", "x", "y", "n", "e") if name in exported}


def _alg(key) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    return "RS256"


def jws_body(url: str, payload: dict | None, *, key, nonce: str, kid: str | None = None) -> bytes:
    """The flattened JSON JWS of an ACME request: `payload` None is a POST-as-GET (an empty
    payload). The protected header carries `jwk` when there is no account URL (`kid`) yet."""
    header = {"alg": _alg(key), "nonce": nonce, "url": url}
    if kid:
        header["kid"] = kid
    else:
        header["jwk"] = public_jwk(key)
    content = b"" if payload is None else json.dumps(payload).encode()
    signed = jws.JWS(payload=content)
    signed.add_signature(jwk.JWK.from_pyca(key), alg=header["alg"], protected=json.dumps(header))
    return signed.serialize(compact=False).encode()


UPN = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft's user principal name


def alt_names(subject_alt_name: dict) -> list[x509.GeneralName]:
    """The general names of an ACME payload's SubjectAltName (Apple's four keys)."""
    names: list[x509.GeneralName] = []
    for key, make in (
        ("rfc822Name", x509.RFC822Name),
        ("dNSName", x509.DNSName),
        ("uniformResourceIdentifier", x509.UniformResourceIdentifier),
    ):
        if subject_alt_name.get(key):
            names.append(make(str(subject_alt_name[key])))
    principal = subject_alt_name.get("ntPrincipalName")
    if principal:
        value = str(principal).encode()
        if len(value) > 127:
            raise ValueError("ntPrincipalName is too long")
        names.append(x509.OtherName(UPN, b"\x0c" + bytes([len(value)]) + value))  # UTF8String
    return names


def csr_der(key, subject: x509.Name, alt_names: list[x509.GeneralName] = ()) -> bytes:
    """The finalize CSR over the device's key: the payload's Subject (and SubjectAltName)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def problem(response: httpx.Response, step: str) -> AcmeError | None:
    """The AcmeError a 4xx answer (a problem document, or any other body) stands for."""
    if response.status_code < 400:
        return None
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        kind = response.headers.get("content-type", "").split(";")[0] or "no content type"
        return AcmeError(step, f"not a problem document: {kind}", status=response.status_code)
    return AcmeError(
        step,
        str(document.get("detail") or ""),
        str(document.get("type") or ""),
        response.status_code,
    )


def retry_after(response: httpx.Response, default: float = POLL_DELAY) -> float:
    """Seconds the server asks to wait (Retry-After in seconds), bounded; else `default`."""
    value = response.headers.get("retry-after", "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return min(float(value), MAX_RETRY_AFTER)
    return default


def leaf_of(chain_pem: bytes, key, step: str = "certificate") -> x509.Certificate:
    """The leaf of a downloaded PEM chain; it must hold the device's key."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise AcmeError(step, f"not a PEM certificate chain: {exc}") from None
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, public)
    if leaf.public_key().public_bytes(serialization.Encoding.DER, public) != ours:
        raise AcmeError(step, "the certificate is not for the device's key")
    return leaf


def _json(response: httpx.Response, step: str) -> dict:
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise AcmeError(step, "the answer is not a JSON object", status=response.status_code)
    return document


def _failed(document: dict, step: str) -> AcmeError:
    """An authorization, challenge or order that became invalid, with its error if given."""
    error = document.get("error")
    if not isinstance(error, dict):
        for challenge in document.get("challenges") or []:
            if isinstance(challenge, dict) and isinstance(challenge.get("error"), dict):
                error = challenge["error"]
    if isinstance(error, dict):
        return AcmeError(step, str(error.get("detail") or ""), str(error.get("type") or ""))
    return AcmeError(step, f"status {document.get('status')!r}")


# -- the client -----------------------------------------------------------------------------


class AcmeClient:
    """One device's ACME conversation with the server at `directory_url`."""

    def __init__(
        self,
        send: Send,
        directory_url: str,
        *,
        account=None,
        sleep: Callable[[float], Awaitable] = asyncio.sleep,
        poll_tries: int = POLL_TRIES,
    ):
        self.send = send
        self.directory_url = directory_url
        self.account = account or account_key()
        self.kid: str | None = None  # the account URL, once registered
        self.nonce: str | None = None
        self.directory: dict = {}
        self.sleep = sleep
        self.poll_tries = poll_tries

    async def _send(self, step: str, method: str, url: str, **kw) -> httpx.Response:
        response = await self.send(method, url, **kw)
        nonce = response.headers.get("replay-nonce")
        if nonce:
            self.nonce = nonce
        return response

    async def load_directory(self) -> dict:
        response = await self._send("directory", "GET", self.directory_url)
        error = problem(response, "directory")
        if error is not None:
            raise error
        self.directory = _json(response, "directory")
        missing = [k for k in ("newNonce", "newAccount", "newOrder") if k not in self.directory]
        if missing:
            raise AcmeError("directory", f"no {', '.join(missing)} in the directory")
        return self.directory

    async def new_nonce(self) -> str:
        """A fresh nonce from newNonce: HEAD, or GET when the server does not take HEAD."""
        url = self.directory["newNonce"]
        self.nonce = None
        response = await self._send("newNonce", "HEAD", url)
        if self.nonce is None and response.status_code == 405:
            response = await self._send("newNonce", "GET", url)
        if self.nonce is None:
            raise AcmeError("newNonce", "no Replay-Nonce", status=response.status_code)
        return self.nonce

    async def post(
        self,
        url: str,
        payload: dict | None,
        *,
        step: str,
        key=None,
        kid: str | None = None,
        nonce: str | None = None,
        accept: str | None = None,
    ) -> httpx.Response:
        """A signed POST (`payload` None: POST-as-GET) with the account key and kid unless
        given; a 4xx becomes AcmeError, after one retry with a fresh nonce on badNonce."""
        key = key or self.account
        kid = kid if kid is not None else self.kid
        headers = {"Content-Type": JOSE_CT}
        if accept:
            headers["Accept"] = accept
        for attempt in range(2):
            nonce = nonce or self.nonce or await self.new_nonce()
            self.nonce = None  # a nonce is good for one request
            body = jws_body(url, payload, key=key, nonce=nonce, kid=kid)
            response = await self._send(step, "POST", url, content=body, headers=headers)
            error = problem(response, step)
            if error is None:
                return response
            if error.problem_type != BAD_NONCE or attempt:
                raise error
            nonce = None  # the refusal's own Replay-Nonce (or a new one) for the retry
        raise AssertionError("unreachable")

    async def new_account(self) -> str:
        response = await self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True}, step="newAccount", kid=""
        )
        self.kid = response.headers.get("location")
        if not self.kid:
            raise AcmeError("newAccount", "no Location (account URL)", status=response.status_code)
        return self.kid

    async def new_order(self, client_identifier: str) -> tuple[str, dict]:
        identifiers = [{"type": IDENTIFIER_TYPE, "value": client_identifier}]
        response = await self.post(
            self.directory["newOrder"], {"identifiers": identifiers}, step="newOrder"
        )
        order_url = response.headers.get("location")
        order = _json(response, "newOrder")
        if not order_url or not order.get("authorizations") or not order.get("finalize"):
            raise AcmeError("newOrder", "an order without Location, authorizations or finalize")
        return order_url, order

    async def _poll(self, url: str, step: str, done: tuple[str, ...]) -> dict:
        """POST-as-GET `url` until its status is one of `done` (or invalid: AcmeError)."""
        status = None
        for _ in range(self.poll_tries):
            response = await self.post(url, None, step=step)
            document = _json(response, step)
            status = document.get("status")
            if status in done:
                return document
            if status in ("invalid", "revoked", "deactivated", "expired"):
                raise _failed(document, step)
            await self.sleep(retry_after(response))
        raise AcmeError(step, f"still {status!r} after {self.poll_tries} polls")

    async def authorize(self, url: str, attestation: Attestation | None) -> None:
        """Fulfil one authorization by its device-attest-01 challenge, then wait for it."""
        response = await self.post(url, None, step="authorization")
        authorization = _json(response, "authorization")
        if authorization.get("status") == "valid":
            return  # nothing to prove (ACME without attestation, or proved before)
        challenge = next(
            (
                c
                for c in authorization.get("challenges") or []
                if isinstance(c, dict) and c.get("type") == CHALLENGE_TYPE
            ),
            None,
        )
        if challenge is None or not challenge.get("url"):
            raise AcmeError("authorization", f"no {CHALLENGE_TYPE} challenge offered")
        if challenge.get("status") == "pending":
            answer = {}
            if attestation is not None:
                token = str(challenge.get("token") or "")
                if not token:
                    raise AcmeError("challenge", "the challenge has no token")
                answer = {"attObj": b64url(attestation(token))}
            await self.post(challenge["url"], answer, step="challenge")
        await self._poll(url, "authorization", ("valid",))

    async def finalize(self, order_url: str, order: dict, csr: bytes) -> dict:
        if order.get("status") != "ready":
            order = await self._poll(order_url, "order", ("ready", "processing", "valid"))
        if order.get("status") == "ready":
            response = await self.post(order["finalize"], {"csr": b64url(csr)}, step="finalize")
            order = _json(response, "finalize")
        if order.get("status") != "valid":
            order = await self._poll(order_url, "order", ("valid",))
        if not order.get("certificate"):
            raise AcmeError("order", "a valid order without a certificate URL")
        return order

    async def certificate(self, url: str) -> bytes:
        response = await self.post(url, None, step="certificate", accept=PEM_CHAIN_CT)
        return response.content

    async def enroll(
        self,
        client_identifier: str,
        key,
        subject: x509.Name,
        *,
        attestation: Attestation | None = None,
        alt_names: list[x509.GeneralName] = (),
    ) -> x509.Certificate:
        """The whole flow for the device's `key`: its identity certificate (the leaf)."""
        await self.load_directory()
        await self.new_nonce()
        await self.new_account()
        order_url, order = await self.new_order(client_identifier)
        for authorization_url in order["authorizations"]:
            await self.authorize(authorization_url, attestation)
        order = await self.finalize(order_url, order, csr_der(key, subject, alt_names))
        return leaf_of(await self.certificate(order["certificate"]), key)


# -- one request, synchronously (tests) -----------------------------------------------------


def post(
    url: str,
    payload: dict | None,
    *,
    key,
    kid: str | None = None,
    nonce: str | None = None,
    client: httpx.Client,
    new_nonce_url: str | None = None,
    accept: str | None = None,
) -> httpx.Response:
    """One signed ACME POST with a synchronous httpx client, the response as it came (a 4xx
    included). Without `nonce` one is taken from `new_nonce_url` (HEAD); on badNonce it is sent
    once more with the refusal's Replay-Nonce, when `nonce` was not imposed."""
    headers = {"Content-Type": JOSE_CT, **({"Accept": accept} if accept else {})}
    imposed = nonce is not None
    if nonce is None:
        if not new_nonce_url:
            raise ValueError("post needs a nonce or the newNonce URL")
        nonce = client.head(new_nonce_url).headers.get("replay-nonce", "")
    response = client.post(
        url, content=jws_body(url, payload, key=key, nonce=nonce, kid=kid), headers=headers
    )
    error = problem(response, "post")
    fresh = response.headers.get("replay-nonce")
    if error is not None and error.problem_type == BAD_NONCE and fresh and not imposed:
        body = jws_body(url, payload, key=key, nonce=fresh, kid=kid)
        response = client.post(url, content=body, headers=headers)
    return response
