"""devices.inventory: Acknowledged query results become reports, rows and Device columns."""

import base64
import hashlib
import plistlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devices import inventory
from devices.inventory import INVENTORY_REQUEST_TYPES, InventoryError, apply_result, json_safe
from devices.models import (
    Device,
    InstalledApplication,
    InstalledCertificate,
    InstalledProfile,
    InventoryReport,
)

UDID = "00008030-001A2B3C4D5E6F70"
T1 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)


def device_result(**payload) -> dict:
    """A result as the device sends it, through a plist round trip so types are plist types."""
    result = {
        "Status": "Acknowledged",
        "UDID": UDID,
        "CommandUUID": str(uuid.uuid4()).upper(),
        **payload,
    }
    return plistlib.loads(plistlib.dumps(result, fmt=plistlib.FMT_XML))


def make_certificate(common_name: str, not_after: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def profile(identifier: str, **extra) -> dict:
    return {
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": f"Profile {identifier}",
        "PayloadOrganization": "Example Corp",
        "PayloadVersion": 1,
        "IsManaged": True,
        "IsEncrypted": False,
        "PayloadContent": [
            {"PayloadType": "com.apple.wifi.managed", "PayloadIdentifier": f"{identifier}.wifi"}
        ],
        **extra,
    }


@pytest.fixture
def device() -> Device:
    return Device.objects.create(udid=UDID)


def report(device: Device, kind: str) -> InventoryReport:
    return InventoryReport.objects.get(device=device, kind=kind)


def test_inventory_request_types():
    assert isinstance(INVENTORY_REQUEST_TYPES, frozenset)
    assert set(INVENTORY_REQUEST_TYPES) == {
        "DeviceInformation",
        "SecurityInfo",
        "ProfileList",
        "ProvisioningProfileList",
        "CertificateList",
        "InstalledApplicationList",
        "ManagedApplicationList",
        "Restrictions",
    }


def test_json_safe_converts_plist_values_recursively():
    value = {
        "Token": b"\x00\x01\xff",
        "When": datetime(2025, 1, 2, 3, 4, 5),  # naive, as plistlib gives it: UTC
        "Nested": [{"Aware": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)}, [b"ab"]],
        "Plain": ["s", 1, 2.5, True, None],
        "NotANumber": float("nan"),
    }
    assert json_safe(value) == {
        "Token": "AAH/",
        "When": "2025-01-02T03:04:05+00:00",
        "Nested": [{"Aware": "2025-01-02T03:04:05+00:00"}, ["YWI="]],
        "Plain": ["s", 1, 2.5, True, None],
        "NotANumber": None,
    }
    with pytest.raises(TypeError):
        json_safe({"Bad": object()})


@pytest.mark.django_db
def test_non_inventory_request_type_returns_false(device):
    result = device_result(Identifier="com.example.app", State="Installing")
    assert apply_result(device, "InstallApplication", result, T1) is False
    assert not InventoryReport.objects.exists()


@pytest.mark.django_db
def test_device_information_fills_report_and_device_columns(device):
    result = device_result(
        QueryResponses={
            "UDID": UDID,
            "DeviceName": "Alice's iPhone",
            "OSVersion": "18.3.1",
            "BuildVersion": "22D72",
            "ModelName": "iPhone",
            "Model": "MTP03LL",
            "ProductName": "iPhone15,4",
            "SerialNumber": "F2LXK1ABCD12",
            "IMEI": "35 123456 789012 3",
            "MEID": "35123456789012",
            "DeviceCapacity": 119.1,
            "BatteryLevel": 0.87,
            "IsSupervised": True,
            "PushToken": b"\x12\x34\xab",
            "LastCloudBackupDate": datetime(2025, 2, 28, 22, 15, 0),
            "OSUpdateSettings": {"AutoCheckEnabled": True, "PreviousScanResult": 2},
            "ServiceSubscriptions": [{"Slot": "CTSubscriptionSlotOne", "IMEI": "35 1"}],
        }
    )
    assert apply_result(device, "DeviceInformation", result, T1) is True

    device.refresh_from_db()
    assert device.device_name == "Alice's iPhone"
    assert device.os_version == "18.3.1"
    assert device.build_version == "22D72"
    assert device.model_name == "iPhone"
    assert device.model == "MTP03LL"
    assert device.product_name == "iPhone15,4"
    assert device.serial_number == "F2LXK1ABCD12"
    assert device.imei == "35 123456 789012 3"
    assert device.meid == "35123456789012"

    stored = report(device, "DeviceInformation")
    assert stored.reported_at == T1
    assert stored.data["PushToken"] == base64.b64encode(b"\x12\x34\xab").decode()
    assert stored.data["LastCloudBackupDate"] == "2025-02-28T22:15:00+00:00"
    assert stored.data["OSUpdateSettings"] == {"AutoCheckEnabled": True, "PreviousScanResult": 2}
    assert stored.data["BatteryLevel"] == 0.87
    assert stored.data["ServiceSubscriptions"][0]["Slot"] == "CTSubscriptionSlotOne"
    # The result's envelope is not inventory.
    assert "Status" not in stored.data and "CommandUUID" not in stored.data


@pytest.mark.django_db
def test_device_information_merges_keys_across_results(device):
    first = {"DeviceName": "Old name", "SerialNumber": "SERIAL1", "BatteryLevel": 0.5}
    apply_result(device, "DeviceInformation", device_result(QueryResponses=first), T1)
    # A later query for a subset of the keys.
    second = {"DeviceName": "New name", "WiFiMAC": "aa:bb:cc:dd:ee:ff"}
    apply_result(device, "DeviceInformation", device_result(QueryResponses=second), T2)

    stored = report(device, "DeviceInformation")
    assert stored.data == {
        "DeviceName": "New name",
        "SerialNumber": "SERIAL1",
        "BatteryLevel": 0.5,
        "WiFiMAC": "aa:bb:cc:dd:ee:ff",
    }
    assert stored.reported_at == T2
    device.refresh_from_db()
    assert device.device_name == "New name"
    assert device.serial_number == "SERIAL1"  # absent from the second answer: unchanged


@pytest.mark.django_db
def test_device_information_leaves_columns_it_did_not_answer(device):
    Device.objects.filter(pk=device.pk).update(serial_number="FROMAUTH", model="MODEL1")
    device.refresh_from_db()
    result = device_result(QueryResponses={"OSVersion": "17.0"})
    apply_result(device, "DeviceInformation", result, T1)
    device.refresh_from_db()
    assert (device.serial_number, device.model, device.os_version) == ("FROMAUTH", "MODEL1", "17.0")


@pytest.mark.django_db
def test_device_columns_are_truncated_to_their_max_length(device):
    result = device_result(QueryResponses={"DeviceName": "x" * 300, "OSVersion": "1" * 40})
    apply_result(device, "DeviceInformation", result, T1)
    device.refresh_from_db()
    assert device.device_name == "x" * 255
    assert device.os_version == "1" * 32
    assert report(device, "DeviceInformation").data["DeviceName"] == "x" * 300


@pytest.mark.django_db
def test_profile_list_stores_rows_and_report(device):
    signer = make_certificate("Signer", datetime(2030, 1, 1, tzinfo=UTC))
    result = device_result(
        ProfileList=[
            profile("com.example.mdm", SignerCertificates=[signer], PayloadRemovalDisallowed=True),
            {"PayloadIdentifier": "com.example.bare"},  # everything else missing
        ]
    )
    assert apply_result(device, "ProfileList", result, T1) is True

    mdm, bare = InstalledProfile.objects.filter(device=device).order_by("-identifier")
    assert mdm.identifier == "com.example.mdm"
    assert mdm.uuid == result["ProfileList"][0]["PayloadUUID"]
    assert mdm.display_name == "Profile com.example.mdm"
    assert mdm.organization == "Example Corp"
    assert (mdm.version, mdm.is_managed, mdm.is_encrypted) == (1, True, False)
    assert mdm.reported_at == T1
    assert bare.identifier == "com.example.bare"
    assert (bare.uuid, bare.display_name, bare.organization) == ("", "", "")
    assert (bare.version, bare.is_managed, bare.is_encrypted) == (None, None, None)

    stored = report(device, "ProfileList")
    assert stored.reported_at == T1
    assert stored.data[0]["SignerCertificates"] == [base64.b64encode(signer).decode()]
    assert stored.data[0]["PayloadContent"][0]["PayloadType"] == "com.apple.wifi.managed"
    assert stored.data[1] == {"PayloadIdentifier": "com.example.bare"}


@pytest.mark.django_db
def test_a_new_profile_list_replaces_the_old_one(device):
    other = Device.objects.create(udid="OTHER-UDID")
    three = device_result(ProfileList=[profile("a"), profile("b"), profile("c")])
    apply_result(device, "ProfileList", three, T1)
    apply_result(other, "ProfileList", device_result(ProfileList=[profile("z")]), T1)

    apply_result(device, "ProfileList", device_result(ProfileList=[profile("b")]), T2)

    rows = InstalledProfile.objects.filter(device=device)
    assert [(row.identifier, row.reported_at) for row in rows] == [("b", T2)]
    assert [p["PayloadIdentifier"] for p in report(device, "ProfileList").data] == ["b"]
    # Another device's profiles are not touched.
    assert list(other.profiles.values_list("identifier", flat=True)) == ["z"]

    apply_result(device, "ProfileList", device_result(ProfileList=[]), T2)
    assert not InstalledProfile.objects.filter(device=device).exists()
    assert report(device, "ProfileList").data == []


@pytest.mark.django_db
def test_installed_application_list(device):
    result = device_result(
        InstalledApplicationList=[
            {
                "Identifier": "com.example.notes",
                "Name": "Notes Pro",
                "Version": "412",
                "ShortVersion": "4.1.2",
                "BundleSize": 52_428_800,
                "DynamicSize": 6_000_000_000,  # beyond 32 bits
                "IsValidated": True,
                "IsManaged": True,
            },
            {"Name": "No identifier: skipped", "Version": "1"},
            {"Identifier": "com.example.bare"},
        ]
    )
    assert apply_result(device, "InstalledApplicationList", result, T1) is True

    notes, bare = InstalledApplication.objects.filter(device=device).order_by("-identifier")
    assert notes.identifier == "com.example.notes"
    assert (notes.name, notes.version, notes.short_version) == ("Notes Pro", "412", "4.1.2")
    assert (notes.bundle_size, notes.dynamic_size, notes.is_managed) == (
        52_428_800,
        6_000_000_000,
        True,
    )
    assert notes.reported_at == T1
    assert (bare.name, bare.bundle_size, bare.is_managed) == ("", None, None)
    # The report keeps the device's whole answer, the skipped entry too.
    assert len(report(device, "InstalledApplicationList").data) == 3


@pytest.mark.django_db
def test_a_long_application_list_takes_a_few_queries(device, django_assert_max_num_queries):
    apps = [
        {"Identifier": f"com.example.app{i}", "Name": f"App {i}", "BundleSize": i}
        for i in range(3000)
    ]
    result = device_result(InstalledApplicationList=apps)
    apply_result(device, "InstalledApplicationList", result, T1)  # the first has a create
    # Bulk queries only: SQLite caps the parameters of a statement, so the insert comes in
    # batches of about a hundred rows, but nothing is done row by row.
    with django_assert_max_num_queries(len(apps) // 50):
        apply_result(device, "InstalledApplicationList", result, T2)
    assert InstalledApplication.objects.filter(device=device, reported_at=T2).count() == 3000


@pytest.mark.django_db
def test_certificate_list(device):
    not_after = datetime(2031, 6, 30, 12, 0, tzinfo=UTC)
    der = make_certificate("Device Identity", not_after)
    result = device_result(
        CertificateList=[
            {"CommonName": "Device Identity", "IsIdentity": True, "Data": der},
            {"CommonName": "Not a certificate", "IsIdentity": False, "Data": b"garbage"},
            {"Data": der},  # CommonName and IsIdentity missing
        ]
    )
    assert apply_result(device, "CertificateList", result, T1) is True

    identity, garbage, bare = InstalledCertificate.objects.filter(device=device).order_by("pk")
    assert identity.common_name == "Device Identity"
    assert identity.is_identity is True
    assert identity.sha256 == hashlib.sha256(der).hexdigest()
    assert identity.not_after == not_after
    assert identity.reported_at == T1
    assert garbage.sha256 == hashlib.sha256(b"garbage").hexdigest()
    assert garbage.not_after is None
    assert (bare.common_name, bare.is_identity) == ("", False)

    data = report(device, "CertificateList").data
    assert data[0]["Data"] == base64.b64encode(der).decode()


@pytest.mark.django_db
def test_security_info(device):
    security = {
        "HardwareEncryptionCaps": 3,
        "PasscodePresent": True,
        "PasscodeCompliant": True,
        "PasscodeCompliantWithProfiles": True,
        "FDE_PersonalRecoveryKeyCMS": b"\x30\x82\x01\x00",
        "ManagementStatus": {"EnrolledViaDEP": False, "UserApprovedEnrollment": True},
    }
    assert apply_result(device, "SecurityInfo", device_result(SecurityInfo=security), T1)
    stored = report(device, "SecurityInfo")
    assert stored.data == {**security, "FDE_PersonalRecoveryKeyCMS": "MIIBAA=="}
    assert stored.reported_at == T1


@pytest.mark.django_db
def test_provisioning_profile_list(device):
    profiles = [
        {"Name": "Example Enterprise", "UUID": "A-UUID", "ExpiryDate": datetime(2026, 1, 31)}
    ]
    result = device_result(ProvisioningProfileList=profiles)
    assert apply_result(device, "ProvisioningProfileList", result, T1)
    assert report(device, "ProvisioningProfileList").data == [
        {"Name": "Example Enterprise", "UUID": "A-UUID", "ExpiryDate": "2026-01-31T00:00:00+00:00"}
    ]


@pytest.mark.django_db
def test_managed_application_list(device):
    apps = {
        "com.example.notes": {"Status": "Managed", "ManagementFlags": 1, "HasConfiguration": True},
        "com.example.paid": {"Status": "NeedsRedemption", "ManagementFlags": 5},
    }
    result = device_result(ManagedApplicationList=apps)
    assert apply_result(device, "ManagedApplicationList", result, T1)
    assert report(device, "ManagedApplicationList").data == apps


@pytest.mark.django_db
def test_restrictions(device):
    global_restrictions = {
        "restrictedBool": {"allowCamera": {"value": False}},
        "restrictedValue": {"maxGracePeriod": {"value": 5}},
    }
    by_profile = {"com.example.restrictions": {"restrictedBool": {"allowCamera": {"value": False}}}}
    result = device_result(GlobalRestrictions=global_restrictions, ProfileRestrictions=by_profile)
    assert apply_result(device, "Restrictions", result, T1)
    assert report(device, "Restrictions").data == {
        "GlobalRestrictions": global_restrictions,
        "ProfileRestrictions": by_profile,
    }

    # Without ProfileRestrictions in the command, the device only sends the global ones.
    apply_result(device, "Restrictions", device_result(GlobalRestrictions={}), T2)
    assert report(device, "Restrictions").data == {"GlobalRestrictions": {}}


@pytest.mark.django_db
def test_reported_at_defaults_to_now(device):
    before = datetime.now(UTC)
    apply_result(device, "SecurityInfo", device_result(SecurityInfo={"PasscodePresent": False}))
    assert before <= report(device, "SecurityInfo").reported_at <= datetime.now(UTC)


@pytest.mark.django_db
def test_an_older_result_does_not_replace_a_newer_one(device):
    apply_result(device, "ProfileList", device_result(ProfileList=[profile("new")]), T2)
    stale = device_result(ProfileList=[profile("old")])
    assert apply_result(device, "ProfileList", stale, T1) is True
    assert list(device.profiles.values_list("identifier", flat=True)) == ["new"]
    assert report(device, "ProfileList").reported_at == T2


MALFORMED = [
    ("DeviceInformation", {"QueryResponses": ["not", "a", "dict"]}, "QueryResponses"),
    ("DeviceInformation", {}, "QueryResponses is missing"),
    ("DeviceInformation", {"QueryResponses": {"SerialNumber": 12}}, "SerialNumber"),
    ("SecurityInfo", {"SecurityInfo": "yes"}, "SecurityInfo"),
    ("ProfileList", {"ProfileList": {"PayloadIdentifier": "a"}}, "ProfileList"),
    ("ProfileList", {"ProfileList": [profile("a"), "b"]}, r"ProfileList\[1\]"),
    ("ProfileList", {"ProfileList": [profile("a", PayloadVersion="1")]}, "PayloadVersion"),
    ("ProfileList", {"ProfileList": [profile("a", IsManaged=1)]}, "IsManaged"),
    ("ProvisioningProfileList", {"ProvisioningProfileList": [1]}, "ProvisioningProfileList"),
    ("CertificateList", {"CertificateList": [{"CommonName": "x"}]}, r"CertificateList\[0\].Data"),
    ("CertificateList", {"CertificateList": [{"Data": "text"}]}, "Data"),
    (
        "InstalledApplicationList",
        {"InstalledApplicationList": [{"Identifier": "a", "BundleSize": "big"}]},
        "BundleSize",
    ),
    (
        "InstalledApplicationList",
        {"InstalledApplicationList": [{"Identifier": "a", "BundleSize": 2**63}]},
        "out of range",
    ),
    ("ManagedApplicationList", {"ManagedApplicationList": {"com.a": "Managed"}}, "com.a"),
    ("Restrictions", {"ProfileRestrictions": {}}, "GlobalRestrictions"),
    ("Restrictions", {"GlobalRestrictions": {}, "ProfileRestrictions": []}, "ProfileRestrictions"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("request_type", "payload", "message"), MALFORMED)
def test_malformed_results_raise_and_write_nothing(device, request_type, payload, message):
    # Something already stored for every kind, which the malformed result must leave as it was.
    valid = {
        "DeviceInformation": {"QueryResponses": {"SerialNumber": "KEEP"}},
        "SecurityInfo": {"SecurityInfo": {"PasscodePresent": True}},
        "ProfileList": {"ProfileList": [profile("keep")]},
        "ProvisioningProfileList": {"ProvisioningProfileList": []},
        "CertificateList": {"CertificateList": [{"Data": b"keep"}]},
        "InstalledApplicationList": {"InstalledApplicationList": [{"Identifier": "keep"}]},
        "ManagedApplicationList": {"ManagedApplicationList": {}},
        "Restrictions": {"GlobalRestrictions": {}},
    }
    for kind, valid_payload in valid.items():
        apply_result(device, kind, device_result(**valid_payload), T1)
    before = snapshot(device)

    with pytest.raises(InventoryError, match=message):
        apply_result(device, request_type, device_result(**payload), T2)

    assert snapshot(device) == before


def snapshot(device: Device) -> dict:
    device.refresh_from_db()
    return {
        "device": Device.objects.filter(pk=device.pk).values().get(),
        "reports": list(InventoryReport.objects.values("kind", "data", "reported_at")),
        "profiles": list(InstalledProfile.objects.values("identifier", "reported_at")),
        "apps": list(InstalledApplication.objects.values("identifier", "reported_at")),
        "certs": list(InstalledCertificate.objects.values("sha256", "reported_at")),
    }


@pytest.mark.django_db
def test_a_result_that_is_not_a_dict_or_not_acknowledged_is_refused(device):
    with pytest.raises(InventoryError, match="dictionary"):
        apply_result(device, "ProfileList", ["not", "a", "dict"], T1)
    error = device_result(Status="Error", ErrorChain=[{"ErrorCode": 12}])
    with pytest.raises(InventoryError, match="Acknowledged"):
        apply_result(device, "ProfileList", error, T1)
    assert not InventoryReport.objects.exists()


@pytest.mark.django_db
def test_a_failure_while_writing_rolls_everything_back(device, monkeypatch):
    def fail(*args):
        raise RuntimeError("database went away")

    # The report is written before the device columns would be.
    monkeypatch.setattr(inventory, "_update_device", fail)
    result = device_result(QueryResponses={"SerialNumber": "S1"})
    with pytest.raises(RuntimeError):
        apply_result(device, "DeviceInformation", result, T1)
    assert not InventoryReport.objects.exists()
