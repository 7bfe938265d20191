"""An outside ACME client, certbot's `acme` library, gets a device identity from the portal
over real HTTP: account, order for a permanent-identifier (the ClientIdentifier),
device-attest-01 answered with an Apple-style attestation, finalize with a P-384 CSR, the
chain downloaded; and the attestation-optional enrollment, whose order is ready at once."""

import datetime as dt

import josepy as jose
import pytest
from acme import challenges, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs.ca import ensure_ca
from certs.models import AcmeAccount, IssuedCertificate
from simulator.attestation import AttestationCA
from tests.acme_support import Device, client_identifier

pytestmark = pytest.mark.django_db(transaction=True)

PERMANENT_IDENTIFIER = messages.IdentifierType("permanent-identifier")


@challenges.Challenge.register
class DeviceAttest01(challenges.Challenge):
    """draft-ietf-acme-device-attest's challenge, which certbot does not know."""

    typ = "device-attest-01"
    token: str = jose.field("token")


@challenges.ChallengeResponse.register
class DeviceAttest01Response(challenges.ChallengeResponse):
    """The device's answer: {"attObj": base64url(CBOR attestation object)}."""

    typ = "device-attest-01"
    att_obj: str = jose.field("attObj")


ACCOUNT_KEYS = {
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), jose.ES256),
    "ES384": (lambda: ec.generate_private_key(ec.SECP384R1()), jose.ES384),
    "RS256": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), jose.RS256),
}


def acme_client(live_server, alg: str) -> ClientV2:
    make_key, signature = ACCOUNT_KEYS[alg]
    key = make_key()
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
    jwk = jose.JWKEC(key=key) if is_ec else jose.JWKRSA(key=key)
    net = ClientNetwork(key=jwk, alg=signature, verify_ssl=False, user_agent="mdm-tests")
    directory = ClientV2.get_directory(live_server.url + "/acme/directory", net)
    client = ClientV2(directory, net)
    client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return client


def order_device_identity(
    client: ClientV2, client_id: str, csr_pem: bytes
) -> messages.OrderResource:
    """newOrder with the ClientIdentifier (ClientV2.new_order only orders a CSR's DNS names
    and IPs) and its authorizations, as ClientV2.new_order returns them."""
    net, new_nonce = client.net, client.directory["newNonce"]
    identifier = messages.Identifier(typ=PERMANENT_IDENTIFIER, value=client_id)
    response = net.post(
        client.directory["newOrder"],
        messages.NewOrder(identifiers=(identifier,)),
        new_nonce_url=new_nonce,
    )
    assert response.status_code == 201
    body = messages.Order.from_json(response.json())
    authorizations = [
        messages.AuthorizationResource(
            body=messages.Authorization.from_json(
                net.post(url, None, new_nonce_url=new_nonce).json()
            ),
            uri=url,
        )
        for url in body.authorizations
    ]
    return messages.OrderResource(
        body=body,
        uri=response.headers["Location"],
        authorizations=authorizations,
        csr_pem=csr_pem,
    )


def csr_pem(device: Device) -> bytes:
    csr = x509.load_der_x509_csr(device.csr_der())
    return csr.public_bytes(serialization.Encoding.PEM)


def public_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def deadline() -> dt.datetime:
    return dt.datetime.now() + dt.timedelta(seconds=30)


def answer_attestation(client: ClientV2, orderr, device: Device) -> None:
    (authzr,) = orderr.authorizations
    assert authzr.body.status == messages.STATUS_PENDING
    (challb,) = authzr.body.challenges
    assert isinstance(challb.chall, DeviceAttest01)
    challr = client.answer_challenge(
        challb, DeviceAttest01Response(att_obj=device.att_obj(challb.chall.token))
    )
    assert challr.authzr_uri == authzr.uri


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256"])
def test_certbot_gets_an_attested_device_identity(live_server, settings, tmp_path, alg):
    attestation = AttestationCA.create()
    settings.MDM_ACME_ATTESTATION_ROOTS = str(attestation.save(tmp_path))
    ca, _ = ensure_ca(actor="tests")
    device = Device(attestation)
    text, record = client_identifier()
    client = acme_client(live_server, alg)
    assert AcmeAccount.objects.count() == 1

    orderr = order_device_identity(client, text, csr_pem(device))
    assert orderr.body.status == messages.STATUS_PENDING
    assert orderr.body.identifiers == (messages.Identifier(typ=PERMANENT_IDENTIFIER, value=text),)
    answer_attestation(client, orderr, device)
    done = client.poll_and_finalize(orderr, deadline())

    assert done.body.status == messages.STATUS_VALID
    leaf, issuer = x509.load_pem_x509_certificates(done.fullchain_pem.encode())
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert issuer == ca_certificate
    leaf.verify_directly_issued_by(ca_certificate)
    assert public_der(leaf.public_key()) == public_der(device.key.public_key())
    issued = IssuedCertificate.objects.get()
    assert issued.serial == format(leaf.serial_number, "x")
    assert issued.delivery == "acme"
    assert (issued.attested_udid, issued.attested_serial) == (device.udid, device.serial)
    record.refresh_from_db()
    assert record.used_at is not None


def test_certbot_without_attestation_when_the_enrollment_allows_it(live_server, settings, tmp_path):
    settings.MDM_ACME_ATTESTATION_ROOTS = str(AttestationCA.create().save(tmp_path))
    ensure_ca(actor="tests")
    device = Device(AttestationCA.create())  # its attestation would not even verify
    text, _ = client_identifier(attestation_required=False)
    client = acme_client(live_server, "ES256")

    orderr = order_device_identity(client, text, csr_pem(device))
    assert orderr.body.status == messages.STATUS_READY
    (authzr,) = orderr.authorizations
    assert authzr.body.status == messages.STATUS_VALID and authzr.body.challenges == ()
    done = client.poll_and_finalize(orderr, deadline())

    leaf = x509.load_pem_x509_certificates(done.fullchain_pem.encode())[0]
    issued = IssuedCertificate.objects.get()
    assert issued.sha256 == leaf.fingerprint(hashes.SHA256()).hex()
    assert public_der(leaf.public_key()) == public_der(device.key.public_key())
    assert issued.delivery == "acme"
    assert (issued.attested_udid, issued.attested_serial) == ("", "")


def test_certbot_sees_an_attestation_from_another_root_refused(live_server, settings, tmp_path):
    settings.MDM_ACME_ATTESTATION_ROOTS = str(AttestationCA.create().save(tmp_path))
    ensure_ca(actor="tests")
    device = Device(AttestationCA.create())  # not the trusted one
    text, _ = client_identifier()
    client = acme_client(live_server, "ES256")

    orderr = order_device_identity(client, text, csr_pem(device))
    answer_attestation(client, orderr, device)
    with pytest.raises(errors.ValidationError) as failed:
        client.poll_and_finalize(orderr, deadline())

    (authzr,) = failed.value.failed_authzrs
    assert authzr.body.status == messages.STATUS_INVALID
    error = authzr.body.challenges[0].error
    assert error.typ == "urn:ietf:params:acme:error:badAttestationStatement"
    assert "trusted root" in error.detail
    assert IssuedCertificate.objects.count() == 0
