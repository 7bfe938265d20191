"""The ACME server's front half (RFC 8555 sections 6 and 7.1-7.3): the directory, nonces, the
JWS checks with the error type RFC 8555 gives each refusal, methods, content type, size, the
headers of every answer, accounts, and the URLs behind the TLS proxy."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from jwcrypto import jwk

from certs.acme_nonces import NONCE_LIFETIME, new_nonce, use_nonce
from certs.models import AcmeAccount, AcmeNonce, AcmeOrder, ScepChallenge
from mdm_portal.models import AuditEntry
from tests.acme_support import (
    JOSE,
    ORIGIN,
    AcmeTestClient,
    b64,
    client_identifier,
    jws_body,
    problem_type,
)

pytestmark = pytest.mark.django_db


def test_the_directory_lists_absolute_urls(client):
    response = client.get("/acme/directory")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "newNonce": f"{ORIGIN}/acme/new-nonce",
        "newAccount": f"{ORIGIN}/acme/new-account",
        "newOrder": f"{ORIGIN}/acme/new-order",
        "meta": {"externalAccountRequired": False},
    }


def test_every_answer_carries_a_fresh_nonce_and_the_index_link(client):
    index = f'<{ORIGIN}/acme/directory>;rel="index"'
    head, get = client.head("/acme/new-nonce"), client.get("/acme/new-nonce")
    assert (head.status_code, get.status_code) == (200, 204)
    refused = client.post("/acme/new-order", data="{}", content_type=JOSE)
    directory = client.get("/acme/directory")
    nonces = {r["Replay-Nonce"] for r in (head, get, refused, directory)}
    assert len(nonces) == 4 and AcmeNonce.objects.filter(value__in=nonces).count() == 4
    for response in (head, get, refused, directory):
        assert response["Link"] == index
        assert response["Cache-Control"] == "no-store"


def test_new_account_is_made_once_per_key(client):
    acme = AcmeTestClient(client)
    url = acme.url("/acme/new-account")
    first = acme.post(url, {"contact": ["mailto:it@example.org"], "termsOfServiceAgreed": True})
    assert first.status_code == 201
    assert first["Location"] == f"{ORIGIN}/acme/account/{AcmeAccount.objects.get().pk}"
    assert first.json() == {
        "status": "valid",
        "contact": ["mailto:it@example.org"],
        "orders": first["Location"] + "/orders",
    }
    again = acme.post(url, {"onlyReturnExisting": True})
    assert again.status_code == 200 and again["Location"] == first["Location"]
    assert AcmeAccount.objects.count() == 1
    assert AuditEntry.objects.filter(action="acme.account_created").count() == 1
    stranger = AcmeTestClient(client)
    missing = stranger.post(url, {"onlyReturnExisting": True})
    assert missing.status_code == 400 and problem_type(missing) == "accountDoesNotExist"
    assert AcmeAccount.objects.count() == 1


def test_the_account_thumbprint_is_rfc_7638(client):
    acme = AcmeTestClient(client)
    acme.new_account()
    assert AcmeAccount.objects.get().thumbprint == acme.key.thumbprint()
    assert "d" not in AcmeAccount.objects.get().jwk  # never the private key


def test_a_replayed_nonce_is_refused(client):
    acme = AcmeTestClient(client)
    body = jws_body(acme.key, acme.protected(acme.url("/acme/new-account")), {})
    assert client.post("/acme/new-account", data=body, content_type=JOSE).status_code == 201
    replay = client.post("/acme/new-account", data=body, content_type=JOSE)
    assert replay.status_code == 400 and problem_type(replay) == "badNonce"
    assert replay["Replay-Nonce"]  # a fresh one to retry with


@pytest.mark.parametrize("nonce", ["never-issued", None, 12])
def test_an_unknown_or_missing_nonce_is_refused(client, nonce):
    acme = AcmeTestClient(client)
    response = acme.post(acme.url("/acme/new-account"), {}, nonce=nonce)
    assert response.status_code == 400 and problem_type(response) == "badNonce"
    assert AcmeAccount.objects.count() == 0


def test_nonces_are_single_use_and_expire():
    value = new_nonce()
    assert use_nonce(value) and not use_nonce(value)
    old = new_nonce()
    AcmeNonce.objects.filter(value=old).update(created_at=timezone.now() - NONCE_LIFETIME)
    assert not use_nonce(old)
    stale = new_nonce()
    AcmeNonce.objects.filter(value=stale).update(
        created_at=timezone.now() - NONCE_LIFETIME - timedelta(seconds=1)
    )
    new_nonce()  # issuing prunes the expired ones
    assert not AcmeNonce.objects.filter(value=stale).exists()


def test_a_request_signed_by_another_accounts_key_is_refused(acme, client):
    other = AcmeTestClient(client)
    other.new_account()
    text, record = client_identifier()
    # Account A's kid, account B's signature.
    response = acme.post(
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "permanent-identifier", "value": text}]},
        key=other.key,
    )
    assert response.status_code == 400 and problem_type(response) == "malformed"
    assert "does not verify" in response.json()["detail"]
    assert AcmeOrder.objects.count() == 0
    record.refresh_from_db()
    assert record.used_at is None  # the ClientIdentifier is still good


def test_another_accounts_resources_are_out_of_reach(acme, client):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    other = AcmeTestClient(client)
    other.new_account()
    for url in (order["authorizations"][0], challenge["url"], order["finalize"]):
        response = other.post(url, None if "finalize" not in url else {"csr": "AA"})
        assert response.status_code == 404 and problem_type(response) == "malformed"
    response = other.get(acme.account_url)
    assert response.status_code == 403 and problem_type(response) == "unauthorized"


def test_the_url_in_the_protected_header_must_be_the_url_requested(acme, client):
    text, record = client_identifier()
    payload = {"identifiers": [{"type": "permanent-identifier", "value": text}]}
    for url in (acme.url("/acme/new-account"), "https://testserver/acme/new-order"):
        response = acme.post(acme.url("/acme/new-order"), payload, url=url)
        assert response.status_code == 403 and problem_type(response) == "unauthorized"
    missing = acme.post(acme.url("/acme/new-order"), payload, url=None)
    assert missing.status_code == 400 and problem_type(missing) == "malformed"
    assert AcmeOrder.objects.count() == 0


@pytest.mark.parametrize("alg", ["none", "HS256", "RS1", "PS256"])
def test_an_unsupported_alg_is_refused(client, alg):
    acme = AcmeTestClient(client)
    header = acme.protected(acme.url("/acme/new-account"))
    signed = json.loads(jws_body(acme.key, header, {}))
    signed["protected"] = b64(json.dumps({**header, "alg": alg}).encode())
    response = client.post("/acme/new-account", data=json.dumps(signed), content_type=JOSE)
    assert response.status_code == 400 and problem_type(response) == "badSignatureAlgorithm"
    assert response.json()["algorithms"] == ["RS256", "ES256", "ES384", "ES512"]


def test_an_alg_that_does_not_fit_the_key_is_refused(client):
    acme = AcmeTestClient(client, key=jwk.JWK.generate(kty="EC", crv="P-384"), alg="ES384")
    header = acme.protected(acme.url("/acme/new-account"))
    signed = json.loads(jws_body(acme.key, header, {}))
    signed["protected"] = b64(json.dumps({**header, "alg": "ES256"}).encode())
    response = client.post("/acme/new-account", data=json.dumps(signed), content_type=JOSE)
    assert response.status_code == 400 and problem_type(response) == "malformed"


def test_the_signer_is_named_by_jwk_or_kid_as_the_resource_wants(acme, client):
    new_account, new_order = acme.url("/acme/new-account"), acme.url("/acme/new-order")
    jwk_header = acme.key.export_public(as_dict=True)
    cases = [
        (new_order, {"kid": None}),  # neither jwk nor kid
        (new_order, {"jwk": jwk_header}),  # both
        (new_order, {"kid": None, "jwk": jwk_header}),  # jwk where the account's kid belongs
        (new_account, {}),  # kid for newAccount
    ]
    for url, header in cases:
        response = acme.post(url, {}, **header)
        assert response.status_code == 400 and problem_type(response) == "malformed", header
    unknown = acme.post(new_order, {}, kid=f"{ORIGIN}/acme/account/999")
    assert problem_type(unknown) == "accountDoesNotExist"
    foreign = acme.post(new_order, {}, kid=f"https://elsewhere.example/acme/account/{1}")
    assert problem_type(foreign) == "accountDoesNotExist"


@pytest.mark.parametrize(
    "key",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": "AQAB"},
        jwk.JWK.generate(kty="RSA", size=1024).export_public(as_dict=True),
    ],
)
def test_unusable_account_keys_are_refused(client, key):
    acme = AcmeTestClient(client)
    header = acme.protected(acme.url("/acme/new-account"), jwk=key)
    signed = json.loads(jws_body(acme.key, {**header}, {}))
    response = client.post("/acme/new-account", data=json.dumps(signed), content_type=JOSE)
    assert response.status_code == 400 and problem_type(response) == "badPublicKey"
    assert AcmeAccount.objects.count() == 0


@pytest.mark.parametrize(
    "body, words",
    [
        (b"this is not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"protected": "e30", "payload": ""}', "signature"),
        (b'{"protected": "e30=", "payload": "", "signature": "AA"}', "base64url"),
        (b'{"protected": "!!", "payload": "", "signature": "AA"}', "base64url"),
        (b'{"protected": "bm90IGpzb24", "payload": "", "signature": "AA"}', "not JSON"),
        (b'{"signatures": [], "payload": ""}', "flattened"),
        (b'{"protected": "e30", "header": {}, "payload": "", "signature": "AA"}', "unprotected"),
        (b'{"protected": "e30", "payload": "", "signature": "AA"}', "no alg"),
    ],
)
def test_what_is_no_flattened_jws_is_malformed(client, body, words):
    response = client.post("/acme/new-account", data=body, content_type=JOSE)
    assert response.status_code == 400 and problem_type(response) == "malformed"
    assert words in response.json()["detail"]


def test_a_payload_that_is_no_json_object_is_malformed(acme):
    response = acme.post(acme.url("/acme/new-order"), b"not json")
    assert response.status_code == 400 and problem_type(response) == "malformed"
    assert "payload is not JSON" in response.json()["detail"]


def test_the_unencoded_payload_option_is_refused(client):
    acme = AcmeTestClient(client)
    header = acme.protected(acme.url("/acme/new-account"), b64=False, crit=["b64"])
    body = {"protected": b64(json.dumps(header).encode()), "payload": "{}", "signature": "AA"}
    response = client.post("/acme/new-account", data=json.dumps(body), content_type=JOSE)
    assert response.status_code == 400 and problem_type(response) == "malformed"


def test_content_type_size_and_methods(acme, client):
    signed = jws_body(acme.key, acme.protected(acme.url("/acme/new-order")), {})
    wrong_type = client.post("/acme/new-order", data=signed, content_type="application/json")
    assert wrong_type.status_code == 415 and problem_type(wrong_type) == "malformed"
    huge = client.post("/acme/new-order", data="x" * (64 * 1024 + 1), content_type=JOSE)
    assert huge.status_code == 413 and problem_type(huge) == "malformed"
    for method, path, allow in [
        ("get", "/acme/new-order", "POST"),
        ("get", "/acme/order/1", "POST"),
        ("put", "/acme/new-account", "POST"),
        ("delete", "/acme/directory", "GET, HEAD, POST"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 405 and response["Allow"] == allow, path
        assert problem_type(response) == "malformed"
        assert response["Replay-Nonce"]


def test_post_as_get_reads_and_only_reads(acme):
    text, _ = client_identifier()
    order, _ = acme.start_order(text)
    order_url = order["finalize"].removesuffix("/finalize")
    assert acme.get(order_url).json()["status"] == "pending"
    response = acme.post(order_url, {})
    assert response.status_code == 400 and problem_type(response) == "malformed"
    directory = acme.get(acme.url("/acme/directory"))
    assert directory.json()["newOrder"] == acme.url("/acme/new-order")
    assert acme.get(acme.url("/acme/new-nonce")).status_code == 200
    orders = acme.get(acme.account_url + "/orders").json()
    assert orders == {"orders": [order_url]}


def test_a_deactivated_account_can_do_nothing_more(acme):
    response = acme.post(acme.account_url, {"status": "deactivated"})
    assert response.status_code == 200 and response.json()["status"] == "deactivated"
    text, _ = client_identifier()
    refused = acme.new_order(text)
    assert refused.status_code == 403 and problem_type(refused) == "unauthorized"
    assert ScepChallenge.objects.get().used_at is None


def test_urls_follow_the_origin_the_client_used_behind_the_tls_proxy(client, settings):
    """Behind serve.sh's nginx Django sees plain HTTP with the client's Host: the directory
    and the JWS url are https on that host and port, as the device addressed them."""
    settings.MDM_PUBLIC_URL = "https://mdm.example.org:8443"
    settings.ALLOWED_HOSTS = ["mdm.example.org"]
    origin = "https://mdm.example.org:8443"
    host = {"HTTP_HOST": "mdm.example.org:8443"}
    directory = client.get("/acme/directory", **host).json()
    assert directory["newAccount"] == f"{origin}/acme/new-account"
    acme = AcmeTestClient(client)
    nonce = client.head("/acme/new-nonce", **host)["Replay-Nonce"]
    jwk_header = acme.key.export_public(as_dict=True)
    for url, status in [(f"{ORIGIN}/acme/new-account", 403), (directory["newAccount"], 201)]:
        header = {"alg": "ES256", "nonce": nonce, "url": url, "jwk": jwk_header}
        body = jws_body(acme.key, header, {})
        response = client.post("/acme/new-account", data=body, content_type=JOSE, **host)
        assert response.status_code == status
        nonce = response["Replay-Nonce"]
    assert response["Location"].startswith(f"{origin}/acme/account/")
    assert response["Link"] == f'<{origin}/acme/directory>;rel="index"'
