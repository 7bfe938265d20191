"""SCEP: certificates issued per second by the portal and by Debian's `scepserver`
(micromdm/scep, the yardstick), in the same run, by the same client at the same concurrency.

    python bench/scep_bench.py [--requests 200] [--concurrency 4]   # starts the bench stack

Before the clock starts, every request is built: a PKCSReq per certificate (RSA 2048 requester
keys, a few cycled; a CSR of its own, with a valid challenge: a one-time challenge from the
portal's own challenge function, scepserver's static `-challenge`), AES-256 and SHA-256, which
both servers accept. A thread pool (one HTTP client per thread) POSTs them: to the stack's
/scep through nginx and gunicorn, and to scepserver over plain HTTP on loopback (it has no
TLS). After the clock stops, every answer must be a CertRep signed by the server's CA, SUCCESS,
with a certificate the requester can open. scepserver answers in single DES whatever the
request used (and signs with SHA-1): its envelopes are opened here, since cryptography's CMS
decryption takes only AES. scepserver's CA gets the portal CA's key size, so both sign alike.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import scep as sc  # noqa: E402 - after the path is set

SCEPSERVER = "/usr/bin/scepserver"
STATIC_CHALLENGE = "bench-static-challenge"
PKI_MESSAGE = "application/x-pki-message"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def scepserver(key_size: int = 2048):
    """Debian's scepserver on a free loopback port with a depot of its own: its base URL."""
    if not os.access(SCEPSERVER, os.X_OK):
        raise RuntimeError("scepserver is not installed (package scep: scripts/test-tools.sh)")
    folder = Path(tempfile.mkdtemp(prefix="bench-scepserver-"))
    depot = folder / "depot"
    init = [SCEPSERVER, "ca", "-init", "-depot", str(depot), "-keySize", str(key_size)]
    subprocess.run(init, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = (folder / "scepserver.log").open("w")
    command = [SCEPSERVER, "-depot", str(depot), "-port", str(port)]
    process = subprocess.Popen(
        [*command, "-challenge", STATIC_CHALLENGE], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"scepserver did not start: see {log.name}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/scep"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def client(verify) -> httpx.Client:
    return httpx.Client(verify=verify, timeout=60, trust_env=False)


def ca_certificates(url: str, verify):
    """(CA, recipient) from GetCACert."""
    with client(verify) as http:
        answer = http.get(url, params={"operation": "GetCACert"})
    answer.raise_for_status()
    return sc.split_ca_certs(answer.content, answer.headers["content-type"])


def build_requests(recipient, challenges: list[str], keys: list) -> list[tuple]:
    """(der, signer, key) per challenge: a PKCSReq with a subject of its own."""
    run = uuid.uuid4().hex[:8]
    requests = []
    for number, challenge in enumerate(challenges):
        key = keys[number % len(keys)]
        csr = sc.make_scep_csr(key, f"bench-scep-{run}-{number}", challenge)
        signer = sc.signer_for(key, csr)
        requests.append((sc.build_pkcs_req(csr, signer, key, recipient), signer, key))
    return requests


def send_all(url: str, requests: list[tuple], concurrency: int, verify) -> tuple[list, float]:
    """POST every request, `concurrency` at a time: (answers, seconds)."""
    local = threading.local()
    clients = []

    def post(request) -> tuple[int, bytes]:
        if not hasattr(local, "http"):
            local.http = client(verify)
            clients.append(local.http)
        answer = local.http.post(
            url,
            params={"operation": "PKIOperation"},
            content=request[0],
            headers={"Content-Type": PKI_MESSAGE},
        )
        return answer.status_code, answer.content

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, requests[:concurrency]))  # warm-up: connections (not counted)
        start = time.perf_counter()
        answers = list(pool.map(post, requests[concurrency:]))
        seconds = time.perf_counter() - start
    for http in clients:
        http.close()
    return answers, seconds


def issued(answer: tuple[int, bytes], request: tuple, ca_cert) -> bool:
    """Whether an answer is a SUCCESS CertRep, signed by the CA, with a certificate."""
    status_code, body = answer
    if status_code != 200:
        return False
    _der, signer, key = request
    try:
        status, _fail, certificate, *_ = sc.read_cert_rep(body, signer, key, ca_cert)
    except ValueError:  # cryptography cannot open a DES envelope: scepserver's
        status, certificate = read_des_cert_rep(body, signer, key, ca_cert)
    return status == sc.SUCCESS and certificate is not None


def read_des_cert_rep(body: bytes, signer, key, ca_cert):
    """(pkiStatus, certificate) of a CertRep whose envelope is single or triple DES."""
    from asn1crypto import cms, core
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, modes
    from cryptography.hazmat.primitives.serialization import pkcs7

    signed = cms.ContentInfo.load(body)["content"]
    signer_info = signed["signer_infos"][0]
    sc._verify(signed, signer_info, ca_cert)
    attributes = sc._attributes(signer_info)
    status = int(attributes[sc.OID_PKI_STATUS].parse(core.PrintableString).native)
    if status != sc.SUCCESS:
        return status, None
    enveloped = cms.ContentInfo.load(signed["encap_content_info"]["content"].native)["content"]
    recipient = enveloped["recipient_infos"][0].chosen
    secret = key.decrypt(recipient["encrypted_key"].native, asym_padding.PKCS1v15())
    content = enveloped["encrypted_content_info"]
    algorithm = content["content_encryption_algorithm"]
    if algorithm["algorithm"].native not in ("des", "tripledes_3key"):
        raise sc.ScepClientError(f"unexpected envelope cipher {algorithm['algorithm'].native}")
    secret = secret * 3 if len(secret) == 8 else secret  # single DES as K1=K2=K3
    decryptor = Cipher(TripleDES(secret), modes.CBC(algorithm["parameters"].native)).decryptor()
    padded = decryptor.update(encrypted_content(content)) + decryptor.finalize()
    unpadder = padding.PKCS7(64).unpadder()
    degenerate = unpadder.update(padded) + unpadder.finalize()
    return status, pkcs7.load_der_pkcs7_certificates(degenerate)[0]


def _values(encoded: bytes) -> list[tuple]:
    """The BER values one after another in `encoded`, each as asn1crypto.parser.parse gives."""
    from asn1crypto import parser

    values = []
    while encoded:
        length = parser.peek(encoded)
        values.append(parser.parse(encoded[:length]))
        encoded = encoded[length:]
    return values


def encrypted_content(content_info) -> bytes:
    """EncryptedContentInfo's encryptedContent, which scepserver encodes constructed (BER: a
    [0] holding OCTET STRINGs), where asn1crypto and cryptography expect it primitive."""
    _class, method, _tag, _header, inner, _trailer = _values(content_info.contents)[2]
    if method == 0:
        return inner
    return b"".join(value[4] for value in _values(inner))


def measure(url: str, challenges: list[str], keys: list, concurrency: int, verify) -> dict:
    ca_cert, recipient = ca_certificates(url, verify)
    requests = build_requests(recipient, challenges, keys)
    answers, seconds = send_all(url, requests, concurrency, verify)
    counted = requests[concurrency:]
    good = sum(issued(a, r, ca_cert) for a, r in zip(answers, counted, strict=True))
    return {
        "requests": len(counted),
        "issued": good,
        "failures": len(counted) - good,
        "seconds": seconds,
        "per_second": good / seconds,
    }


def run(url: str, ca_file: str | Path, *, requests: int = 200, concurrency: int = 4) -> dict:
    """Both servers, the same client: {"portal": figures, "scepserver": figures, "ratio"}.
    Needs Django set up on the portal's database (the portal's one-time challenges)."""
    from certs.challenges import issue_challenge

    verify = ssl.create_default_context(cafile=str(ca_file))
    portal_url = url.rstrip("/") + "/scep"
    ca_cert, _ = ca_certificates(portal_url, verify)
    key_size = getattr(ca_cert.public_key(), "key_size", 2048)
    # RSA key generation is the client's cost, not the server's: a few keys, many requests.
    keys = [sc.make_key() for _ in range(8)]
    total = requests + concurrency  # the first `concurrency` warm the connections up
    portal = measure(
        portal_url, [issue_challenge() for _ in range(total)], keys, concurrency, verify
    )
    with scepserver(key_size) as yardstick_url:
        yardstick = measure(yardstick_url, [STATIC_CHALLENGE] * total, keys, concurrency, False)
    return {
        "concurrency": concurrency,
        "ca_key_size": key_size,
        "algorithms": "requests AES-256-CBC + SHA-256; scepserver answers DES-CBC + SHA-1",
        "portal": portal,
        "scepserver": yardstick,
        "ratio": portal["per_second"] / yardstick["per_second"]
        if yardstick["per_second"]
        else None,
    }


def main() -> None:
    import argparse
    import json

    from bench.stack import Stack
    from bench.testdb import setup_django

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    stack = Stack.start()
    setup_django()
    figures = run(stack.url, stack.ca_file, requests=args.requests, concurrency=args.concurrency)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
