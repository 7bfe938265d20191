"""Every device identity the CA issued, on /certificates/issued/ and at
/api/v1/certificates/issued/: how it was delivered (ACME, SCEP, PKCS#12, or not recorded for
older ones), the serial number and UDID an ACME attestation proved, the device it is bound to;
filtered by delivery, searched by serial or attested values; every role reads, nobody writes."""

import re

import pytest

from certs.ca import issue_certificate, revoke
from devices.identities import bind
from devices.models import Device
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.simulator import make_csr, make_key

pytestmark = pytest.mark.django_db

UDID = "00008120-001A4C2E0A3B801E"
SERIAL = "F2LXK0ABCDEF"


@pytest.fixture
def issued(ca):
    """One identity of each delivery, and one from before deliveries were recorded."""

    def make(name, **options):
        return issue_certificate(make_csr(make_key("ec"), name), **options)[1]

    acme = make("acme-phone", delivery="acme", attested={"udid": UDID, "serial": SERIAL})
    unattested = make("old-mac", delivery="acme")
    scep = make("scep-ipad", delivery="scep")
    pkcs12 = make("p12-mac", delivery="pkcs12")
    old = make("legacy")
    device = Device.objects.create(udid=UDID, serial_number=SERIAL, device_name="Reception iPhone")
    bind(acme, device)
    revoke(scep, reason="lost")
    return {"acme": acme, "unattested": unattested, "scep": scep, "pkcs12": pkcs12, "old": old}


def rows(html: str) -> list[str]:
    body = html.split('aria-label="Issued device identities"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr.*?</tr>", body.split("<tbody", 1)[1], re.S)


def row_of(html: str, record) -> str:
    (row,) = [row for row in rows(html) if record.serial in row]
    return row


def test_the_page_shows_delivery_attested_values_and_the_bound_device(staff, issued):
    for role in (VIEWER, OPERATOR, ADMIN):
        response = staff[role].get("/certificates/issued/")
        assert response.status_code == 200
    html = response.text
    assert len(rows(html)) == 5
    acme = row_of(html, issued["acme"])
    assert '<span class="badge delivery acme">ACME</span>' in acme
    assert SERIAL in acme and UDID in acme
    assert f'href="/devices/{UDID}/"' in acme and "Reception iPhone" in acme
    unattested = row_of(html, issued["unattested"])
    assert "ACME" in unattested and "not bound" in unattested
    assert "<dl" not in unattested  # nothing attested
    scep = row_of(html, issued["scep"])
    assert "badge delivery scep" in scep and "revoked" in scep
    assert "PKCS#12" in row_of(html, issued["pkcs12"])
    assert "not recorded" in row_of(html, issued["old"])
    assert "PRIVATE KEY" not in html and "BEGIN CERTIFICATE" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"delivery": "acme"}, ["acme", "unattested"]),
        ({"delivery": "scep"}, ["scep"]),
        ({"delivery": "pkcs12"}, ["pkcs12"]),
        ({"delivery": "none"}, ["old"]),
        ({"q": SERIAL.lower()}, ["acme"]),
        ({"q": UDID}, ["acme"]),
        ({"q": "p12-mac"}, ["pkcs12"]),
    ],
)
def test_the_page_filters_by_delivery_and_searches(staff, issued, query, expected):
    html = staff[VIEWER].get("/certificates/issued/", query).text
    shown = {name for name, record in issued.items() if record.serial in "".join(rows(html))}
    assert shown == set(expected)


def test_the_page_searches_by_certificate_serial(staff, issued):
    serial = issued["scep"].serial
    html = staff[VIEWER].get("/certificates/issued/", {"q": serial.upper()}).text
    assert len(rows(html)) == 1 and serial in rows(html)[0]


def test_the_certificates_page_links_to_it(staff, issued):
    html = staff[VIEWER].get("/certificates/").text
    assert 'href="/certificates/issued/"' in html


def test_the_api_lists_delivery_and_attested_values(api, issued):
    response = api[VIEWER].get("/api/v1/certificates/issued/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5
    by_serial = {entry["serial"]: entry for entry in results}
    acme = by_serial[issued["acme"].serial]
    assert acme["delivery"] == "acme"
    assert acme["attested_udid"] == UDID and acme["attested_serial"] == SERIAL
    assert acme["device"] == UDID and acme["revoked_at"] is None
    assert by_serial[issued["unattested"].serial]["attested_udid"] == ""
    assert by_serial[issued["unattested"].serial]["device"] is None
    assert by_serial[issued["old"].serial]["delivery"] == ""
    assert by_serial[issued["scep"].serial]["revoked_at"] is not None
    assert "certificate_pem" not in acme and "PRIVATE" not in str(results)
    one = api[VIEWER].get(f"/api/v1/certificates/issued/{issued['acme'].serial.upper()}/")
    assert one.status_code == 200 and one.json() == acme
    assert api[VIEWER].get("/api/v1/certificates/issued/abc123/").status_code == 404


def test_the_api_filters_and_refuses_what_it_cannot_read(api, issued):
    def serials(**query):
        response = api[VIEWER].get("/api/v1/certificates/issued/", query)
        assert response.status_code == 200, response.content
        return {entry["serial"] for entry in response.json()["results"]}

    assert serials(delivery="acme") == {issued["acme"].serial, issued["unattested"].serial}
    assert serials(delivery="none") == {issued["old"].serial}
    assert serials(q=UDID) == {issued["acme"].serial}
    refused = api[VIEWER].get("/api/v1/certificates/issued/", {"delivery": "carrier-pigeon"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("delivery")
    assert api[ADMIN].post("/api/v1/certificates/issued/", {}).status_code == 405
