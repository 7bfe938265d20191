"""Benchmark of the SCEP server: certificates issued per second through the real view.

Runs on a throwaway test database of whatever DATABASE_URL names (SQLite by default):

    python bench/scep_bench.py [--requests 200] [--keys 8]
    DATABASE_URL=postgres://mdm:mdm@127.0.0.1:55432/mdm python bench/scep_bench.py

Each request is a PKCSReq (RSA 2048, AES-256, SHA-256) with its own one-time challenge, sent
by POST through Django's full request handling: parse, signature check, decryption, challenge,
issuance and registry, ScepRequest, audit, CertRep (signed, encrypted to the requester). The
requests are built before the clock starts, and the answers checked after it stops, so only the
server is timed. Prints figures; asserts nothing.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keys", type=int, default=8, help="requester keys to cycle through")
    args = parser.parse_args()
    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"database: {connection.vendor} ({test_db})")
        bench_pkcs_req(args.requests, args.keys)
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


def bench_pkcs_req(count: int, key_count: int) -> None:
    from certs.ca import ensure_ca
    from certs.challenges import issue_challenge
    from certs.models import IssuedCertificate
    from simulator import scep as sc

    ensure_ca(actor="bench")
    client = Client()
    answer = client.get("/scep", {"operation": "GetCACert"})
    ca_cert, recipient = sc.split_ca_certs(answer.content, answer["Content-Type"])
    # RSA key generation is the client's cost, not the server's: a few keys, many requests.
    keys = [sc.make_key() for _ in range(key_count)]
    requests = []
    for number in range(count):
        key = keys[number % key_count]
        csr = sc.make_scep_csr(key, f"bench-{number}", issue_challenge())
        signer = sc.signer_for(key, csr)
        requests.append((sc.build_pkcs_req(csr, signer, key, recipient), signer, key))

    responses = []
    start = time.perf_counter()
    for der, _signer, _key in requests:
        responses.append(
            client.post(
                "/scep?operation=PKIOperation", der, content_type="application/x-pki-message"
            )
        )
    elapsed = time.perf_counter() - start

    issued = 0
    for response, (_der, signer, key) in zip(responses, requests, strict=True):
        status, *_ = sc.read_cert_rep(response.content, signer, key, ca_cert)
        issued += status == sc.SUCCESS
    print(
        f"SCEP PKCSReq by POST (RSA 2048, AES-256, SHA-256, one-time challenge): "
        f"{issued}/{count} issued in {elapsed:.2f} s, {issued / elapsed:.0f} certificates "
        f"per second, {elapsed / count * 1000:.1f} ms each "
        f"({IssuedCertificate.objects.count()} in the registry)"
    )


if __name__ == "__main__":
    main()
