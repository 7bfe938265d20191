"""Realistic devices for the device pages' tests and screenshots: a simulated device answers
every command it is sent as a real iPhone or Mac would (device information, security, profiles,
apps, certificates, restrictions), and a fleet of plain rows fills the list."""

import datetime as dt
import uuid

from django.utils import timezone

from devices.models import Device, DeviceGroup
from tests.test_inventory import make_certificate

UNLOCK_TOKEN = b"unlock-token-\x8f\x01secret-4be2"
BOOTSTRAP_TOKEN = b"bootstrap-token-\x9a\x02secret-77c1"
BYPASS_CODE = "BYPASS-CODE-9Q7X-2MKD-41"
RECOVERY_KEY_CMS = b"personal-recovery-key-cms-blob"

IPHONE = {
    "DeviceName": "Ana's iPhone",
    "Model": "MTLW3LL/A",
    "ModelName": "iPhone",
    "ProductName": "iPhone16,1",
    "OSVersion": "17.5.1",
    "BuildVersion": "21F90",
    "SerialNumber": "F17ZK3P9Q1",
}
MAC = {
    "DeviceName": "Design MacBook Pro",
    "Model": "Z15G",
    "ModelName": "MacBook Pro",
    "ProductName": "Mac15,7",
    "OSVersion": "14.5",
    "BuildVersion": "23F79",
    "SerialNumber": "C02FX1ABQ6L4",
}


def certificate_der(common_name: str, days_left: int) -> bytes:
    return make_certificate(common_name, dt.datetime.now(dt.UTC) + dt.timedelta(days=days_left))


def answers(identity: dict) -> dict[str, dict]:
    """What a device answers to each query command (the result keys beside Status)."""
    return {
        "DeviceInformation": {
            "QueryResponses": {
                **identity,
                "IsSupervised": True,
                "DeviceCapacity": 238.42,
                "AvailableDeviceCapacity": 121.7,
                "BatteryLevel": 0.82,
                "WiFiMAC": "a4:83:e7:1c:22:9f",
                "BluetoothMAC": "a4:83:e7:1c:22:a0",
                "IsActivationLockEnabled": False,
                "IsCloudBackupEnabled": True,
                "PushToken": b"device-push-token-bytes",
                "OSUpdateSettings": {
                    "AutoCheckEnabled": True,
                    "AutomaticOSInstallationEnabled": False,
                    "CatalogURL": "https://swscan.apple.com/content/catalogs/others/index.sucatalog",
                },
                "ServiceSubscriptions": [
                    {
                        "CarrierSettingsVersion": "55.0",
                        "IsRoaming": False,
                        "Slot": "CTSubscriptionSlotOne",
                    },
                ],
            }
        },
        "SecurityInfo": {
            "SecurityInfo": {
                "HardwareEncryptionCaps": 3,
                "PasscodePresent": True,
                "PasscodeCompliant": True,
                "PasscodeCompliantWithProfiles": True,
                "FDE_Enabled": True,
                "FDE_HasPersonalRecoveryKey": True,
                "FDE_PersonalRecoveryKeyCMS": RECOVERY_KEY_CMS,
                "FirewallSettings": {
                    "FirewallEnabled": True,
                    "BlockAllIncoming": False,
                    "StealthMode": True,
                },
                "ManagementStatus": {
                    "EnrolledViaDEP": False,
                    "IsUserEnrollment": False,
                    "UserApprovedEnrollment": True,
                },
                "SecureBoot": {"SecureBootLevel": "full", "ExternalBootLevel": "disallowed"},
            }
        },
        "ProfileList": {
            "ProfileList": [
                {
                    "PayloadIdentifier": "com.example.wifi.office",
                    "PayloadUUID": "0B6E3C9A-1D2F-4E5A-9B8C-7D6E5F4A3B21",
                    "PayloadDisplayName": "Office Wi-Fi",
                    "PayloadOrganization": "Example Corp",
                    "PayloadVersion": 3,
                    "IsManaged": True,
                    "IsEncrypted": False,
                    "PayloadContent": [{"PayloadType": "com.apple.wifi.managed"}],
                },
                {
                    "PayloadIdentifier": "com.example.vpn",
                    "PayloadUUID": "5A4B3C2D-1E0F-4A9B-8C7D-6E5F4A3B2C1D",
                    "PayloadDisplayName": "Staff VPN",
                    "PayloadOrganization": "Example Corp",
                    "PayloadVersion": 1,
                    "IsManaged": True,
                    "IsEncrypted": True,
                    "PayloadContent": [{"PayloadType": "com.apple.vpn.managed"}],
                },
            ]
        },
        "InstalledApplicationList": {
            "InstalledApplicationList": [
                {
                    "Identifier": "com.apple.mobilesafari",
                    "Name": "Safari",
                    "ShortVersion": "17.5",
                    "Version": "8618.2.12",
                    "BundleSize": 12_582_912,
                    "IsManaged": False,
                },
                {
                    "Identifier": "com.microsoft.Office.Outlook",
                    "Name": "Microsoft Outlook",
                    "ShortVersion": "4.2419.0",
                    "Version": "4.2419.0",
                    "BundleSize": 318_767_104,
                    "IsManaged": True,
                },
                {
                    "Identifier": "com.tinyspeck.chatlyio",
                    "Name": "Slack",
                    "ShortVersion": "24.06.10",
                    "Version": "24.06.10",
                    "BundleSize": 201_326_592,
                    "IsManaged": True,
                },
                {
                    "Identifier": "com.example.expenses",
                    "Name": "Expenses",
                    "ShortVersion": "2.8",
                    "Version": "208",
                    "BundleSize": 45_088_768,
                    "IsManaged": True,
                },
            ]
        },
        "CertificateList": {
            "CertificateList": [
                {
                    "CommonName": "Example Corp Root CA",
                    "IsIdentity": False,
                    "Data": certificate_der("Example Corp Root CA", 3200),
                },
                {
                    "CommonName": "MDM identity",
                    "IsIdentity": True,
                    "Data": certificate_der("MDM identity", 21),
                },
                {
                    "CommonName": "Old proxy CA",
                    "IsIdentity": False,
                    "Data": certificate_der("Old proxy CA", -3),
                },
            ]
        },
        "Restrictions": {
            "GlobalRestrictions": {
                "restrictedBool": {
                    "allowCamera": {"value": True},
                    "allowScreenShot": {"value": False},
                    "allowAppRemoval": {"value": False},
                },
                "restrictedValue": {
                    "maxGracePeriod": {"value": 5},
                    "maxInactivity": {"value": 300},
                },
                "intersection": {
                    "allowedAppBundleIDs": {
                        "values": ["com.example.expenses", "com.apple.mobilesafari"]
                    }
                },
            }
        },
        "ActivationLockBypassCode": {"ActivationLockBypassCode": BYPASS_CODE},
    }


def answer_everything(sim, identity: dict = IPHONE, *, fail: set[str] = frozenset()) -> list[str]:
    """Poll and answer every command the device is sent; `fail` request types answer Error.
    Returns the request types answered."""
    replies = answers(identity)
    response = sim.idle()
    seen = []
    while response.body:
        command = response.plist()
        request_type = command["Command"]["RequestType"]
        seen.append(request_type)
        if request_type in fail:
            response = sim.report(
                command["CommandUUID"],
                "Error",
                ErrorChain=[
                    {
                        "ErrorCode": 12021,
                        "ErrorDomain": "MCMDMErrorDomain",
                        "LocalizedDescription": "The device is not supervised.",
                        "USEnglishDescription": "The device is not supervised.",
                    }
                ],
            )
        else:
            response = sim.report(command["CommandUUID"], **replies.get(request_type, {}))
        assert response.status == 200, response.body
    return seen


def enroll_with_inventory(sim, identity: dict = IPHONE) -> Device:
    """Enroll `sim` as `identity` with an UnlockToken and a bootstrap token, and answer the
    initial inventory (and, on iOS, a Restrictions query)."""
    from commands.queue import enqueue

    sim.unlock_token = UNLOCK_TOKEN
    assert sim.authenticate(**identity).status == 200
    assert sim.token_update().status == 200
    assert sim.checkin("SetBootstrapToken", BootstrapToken=BOOTSTRAP_TOKEN).status == 200
    device = Device.objects.get(udid=sim.udid)
    if device.platform == "iOS":  # macOS has no Restrictions query
        enqueue(device, "Restrictions")
    answer_everything(sim, identity)
    return Device.objects.get(udid=sim.udid)


NAMES = ["iPhone", "iPad", "MacBook Air", "MacBook Pro", "iMac", "Apple TV"]
PRODUCTS = {
    "iPhone": ("iOS", "iPhone15,2", ["17.5.1", "17.4", "16.7.8"]),
    "iPad": ("iOS", "iPad13,18", ["17.5", "16.6"]),
    "MacBook Air": ("macOS", "Mac14,2", ["14.5", "13.6.7"]),
    "MacBook Pro": ("macOS", "Mac15,7", ["14.5", "14.4.1"]),
    "iMac": ("macOS", "iMac21,1", ["14.5"]),
    "Apple TV": ("tvOS", "AppleTV14,1", ["17.5"]),
}
PEOPLE = ["Ana", "Ben", "Chloé", "Dev", "Emre", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea"]


def make_fleet(
    count: int, *, groups: tuple[str, ...] = ("Sales", "Engineering", "Lab")
) -> list[Device]:
    """`count` plain device rows with a realistic mix of models, states, groups and last seen."""
    now = timezone.now()
    group_rows = [DeviceGroup.objects.get_or_create(name=name)[0] for name in groups]
    devices = []
    for n in range(count):
        model_name = NAMES[n % len(NAMES)]
        platform, product, versions = PRODUCTS[model_name]
        state = [Device.State.ENROLLED] * 6 + [Device.State.PENDING, Device.State.CHECKED_OUT]
        devices.append(
            Device(
                udid=str(uuid.UUID(int=n + 1)).upper(),
                device_name=f"{PEOPLE[n % len(PEOPLE)]}'s {model_name}",
                serial_number=f"SN{n:08d}",
                model_name=model_name,
                product_name=product,
                platform=platform,
                os_version=versions[n % len(versions)],
                state=state[n % len(state)],
                group=group_rows[n % len(group_rows)] if n % 4 else None,
                last_seen_at=now - dt.timedelta(hours=(n * 7) % (24 * 12)),
                inactive_since=now - dt.timedelta(days=1) if n % 11 == 5 else None,
                token_invalid_at=now - dt.timedelta(hours=3) if n % 13 == 7 else None,
                lost_mode=n % 17 == 9,
            )
        )
    return Device.objects.bulk_create(devices)
