"""Verifying an ACME request: a flattened JSON JWS (RFC 8555 section 6.2, RFC 7515).

`verify_request` takes the body and the URL the client requested and returns who signed it and
what it says, or raises the AcmeProblem RFC 8555 prescribes:
- not a flattened JWS with one signature (no unprotected header, no unencoded payload), a
  protected header without `url`, both or neither of `jwk` and `kid`: malformed;
- an `alg` outside ALGORITHMS (none, MACs...): badSignatureAlgorithm, listing ours;
- `url` other than the URL requested: unauthorized (section 6.4);
- a `kid` that names no account of ours: accountDoesNotExist; a deactivated one: unauthorized;
- a signature that does not verify with the key (`jwk`, or the account's key for `kid`: a
  request of account A signed with B's key): malformed, RFC 8555 having no more specific
  type for a JWS that fails to verify;
- a missing, unknown, expired or already used `nonce`: badNonce.
The signature is checked before the nonce is used up, so a forged request cannot burn the
nonce of a real one. jwcrypto does the JOSE maths.
"""

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from .acme_models import AcmeAccount
from .acme_nonces import use_nonce
from .acme_problems import (
    ACCOUNT_DOES_NOT_EXIST,
    BAD_NONCE,
    BAD_PUBLIC_KEY,
    BAD_SIGNATURE_ALGORITHM,
    UNAUTHORIZED,
    AcmeProblem,
    malformed,
)

# alg -> (JWK kty, EC curve): the only pairs accepted. Asymmetric only (RFC 8555 forbids MACs
# and "none").
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
MIN_RSA_BITS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class SignedRequest:
    """A verified request: its protected header, its payload (None for POST-as-GET, whose
    payload is empty), and the signer (`jwk` for newAccount, else the `account` of its kid)."""

    protected: dict[str, Any]
    payload: dict[str, Any] | None
    key: jwk.JWK
    account: AcmeAccount | None = None


def b64url_decode(text: object, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): anything else is malformed."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise malformed(f"{what} is not base64url (RFC 7515: no padding, no other characters)")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise malformed(f"{what} is not base64url") from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise malformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise malformed(f"{what} is not a JSON object")
    return value


def public_key(value: object) -> jwk.JWK:
    """The account key a `jwk` header carries, public part only, if we accept its kind."""
    if not isinstance(value, dict):
        raise malformed("the jwk header is not a JSON object")
    try:
        key = jwk.JWK(**value)
    except (JWException, TypeError, ValueError) as exc:
        raise AcmeProblem(BAD_PUBLIC_KEY, f"the jwk is not a usable key: {exc}") from None
    kty = key.get("kty")
    if kty == "EC" and key.get("crv") in {"P-256", "P-384", "P-521"}:
        pass
    elif kty == "RSA":
        if key.get_op_key("verify").key_size < MIN_RSA_BITS:
            raise AcmeProblem(BAD_PUBLIC_KEY, f"RSA account keys need {MIN_RSA_BITS} bits")
    else:
        raise AcmeProblem(BAD_PUBLIC_KEY, "account keys are RSA or EC P-256/P-384/P-521")
    return jwk.JWK(**key.export_public(as_dict=True))


def _envelope(body: bytes) -> dict[str, str]:
    """The three members of a flattened JWS, each a string."""
    jose = parse_json_object(body, "the body")
    if "signatures" in jose:
        raise malformed("send the flattened JSON serialization, with one signature")
    if "header" in jose:
        raise malformed("ACME requests have no unprotected header")
    for member in ("protected", "payload", "signature"):
        if not isinstance(jose.get(member), str):
            raise malformed(f"the JWS lacks its {member!r} (a string)")
    return jose


def _check_alg(protected: dict[str, Any]) -> str:
    alg = protected.get("alg")
    if not isinstance(alg, str) or not alg:
        raise malformed("the protected header has no alg")
    if alg not in ALGORITHMS:
        raise AcmeProblem(
            BAD_SIGNATURE_ALGORITHM,
            f"alg {alg[:20]!r} is not supported",
            algorithms=list(ALGORITHMS),
        )
    return alg


def _signer(
    protected: dict[str, Any],
    *,
    new_account: bool,
    find_account: Callable[[str], AcmeAccount | None],
) -> tuple[jwk.JWK, AcmeAccount | None]:
    """The key that must have signed: the embedded jwk (newAccount) or the kid's account's."""
    has_jwk, has_kid = "jwk" in protected, "kid" in protected
    if has_jwk == has_kid:
        raise malformed("the protected header needs exactly one of jwk and kid")
    if new_account:
        if not has_jwk:
            raise malformed("newAccount requests are signed with a jwk, not a kid")
        return public_key(protected["jwk"]), None
    if has_jwk:
        raise malformed("requests other than newAccount name their account with kid")
    kid = protected["kid"]
    account = find_account(kid) if isinstance(kid, str) else None
    if account is None:
        raise AcmeProblem(ACCOUNT_DOES_NOT_EXIST, "the kid is not an account URL of this server")
    if account.status != AcmeAccount.Status.VALID:
        raise AcmeProblem(UNAUTHORIZED, "this account is deactivated")
    return jwk.JWK(**account.jwk), account


def _check_key_fits(alg: str, key: jwk.JWK) -> None:
    kty, curve = ALGORITHMS[alg]
    if key.get("kty") != kty or (curve and key.get("crv") != curve):
        raise malformed(f"alg {alg} does not fit the signing key ({key.get('kty')})")


def verify_request(
    body: bytes,
    url: str,
    *,
    new_account: bool = False,
    find_account: Callable[[str], AcmeAccount | None],
) -> SignedRequest:
    """Check the JWS `body` sent to `url` (exactly the URL the client requested) and use up
    its nonce. `find_account(kid)` returns the account a kid URL names, or None."""
    envelope = _envelope(body)
    protected = parse_json_object(
        b64url_decode(envelope["protected"], "the protected header"), "the protected header"
    )
    alg = _check_alg(protected)
    if "b64" in protected:
        raise malformed("the unencoded payload option (b64) is not allowed in ACME")
    if not isinstance(protected.get("nonce"), str):
        raise AcmeProblem(BAD_NONCE, "the protected header has no nonce")
    if not isinstance(protected.get("url"), str):
        raise malformed("the protected header has no url")
    if protected["url"] != url:
        raise AcmeProblem(
            UNAUTHORIZED,
            f"the url in the protected header ({protected['url'][:200]}) is not the URL "
            f"requested ({url})",
        )
    payload_bytes = b64url_decode(envelope["payload"], "the payload")
    b64url_decode(envelope["signature"], "the signature")
    key, account = _signer(protected, new_account=new_account, find_account=find_account)
    _check_key_fits(alg, key)
    token = jws.JWS()
    try:
        token.deserialize(json.dumps(envelope))
        token.allowed_algs = [alg]
        token.verify(key, alg=alg)
    except (JWException, ValueError, TypeError):
        who = "the jwk" if account is None else "the account's key"
        raise malformed(f"the JWS signature does not verify with {who}") from None
    if not use_nonce(protected["nonce"]):
        raise AcmeProblem(BAD_NONCE, "the nonce is unknown, expired or already used")
    payload = parse_json_object(payload_bytes, "the payload") if payload_bytes else None
    return SignedRequest(protected, payload, key, account)
