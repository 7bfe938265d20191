"""Statements a device signs with the identity its maker gave it: an Apple device in Setup
Assistant POSTs its MachineInfo to the DEP profile's URL as a CMS SignedData, signed with the
device identity Apple issued at activation.

Trust is MDM_DEP_DEVICE_ROOTS, a PEM file of one or more certificates whose keys are trusted to
issue device identities. By default it is Apple's "Apple iPhone Device CA", shipped in
certs/data/apple-iphone-device-ca.pem: the CA Apple's profile-service guide names as the one
device certificates must be issued from (developer.apple.com/library/archive/documentation/
NetworkingInternet/Conceptual/iPhoneOTAConfiguration/profile-service/profile-service.html),
RSA-1024, SHA-1, valid 2007-04-16 to 2014-04-16, under "Apple iPhone Certification Authority"
and "Apple Root CA". SHA-256 (of its DER)
76:F2:7D:00:E1:33:3B:C8:8D:E0:E2:91:6C:38:C9:A7:F2:B7:57:74:C2:5A:79:4C:09:2A:80:E3:C4:C6:6C:CE,
the same in two independent sources: computed from Zentral's Apple_iPhone_Device_CA_Fullchain.pem
(zentralopensource/zentral, zentral/contrib/mdm/assets) and pinned as a constant by another
open-source ADE implementation's MachineInfo verifier.

Why that CA and not Apple Root CA: Apple Root CA also issues developer, Wallet and many other
certificates; trusting it would let any certificate Apple issued under it sign a MachineInfo.
The device CA issues device identities only.
"""

import logging

from cryptography import x509
from django.conf import settings

from .cms import verify_signed_data
from .roots import roots_from_file

log = logging.getLogger("mdm.dep")


class DeviceRootsUnavailable(Exception):
    """MDM_DEP_DEVICE_ROOTS cannot be read: the portal's fault, not the device's."""


def device_roots() -> list[x509.Certificate]:
    """The certificates of MDM_DEP_DEVICE_ROOTS (DeviceRootsUnavailable if unusable)."""
    path = settings.MDM_DEP_DEVICE_ROOTS
    try:
        return roots_from_file(path)
    except (OSError, ValueError) as exc:
        log.error("MDM_DEP_DEVICE_ROOTS (%s) is unusable: %s", path, exc)
        raise DeviceRootsUnavailable(
            "the portal cannot read its trusted device roots (MDM_DEP_DEVICE_ROOTS)"
        ) from None


def verify_device_statement(der: bytes) -> tuple[bytes, x509.Certificate]:
    """(content, signer's certificate) of a statement signed by a device identity that leads
    to MDM_DEP_DEVICE_ROOTS. Raises cms.CMSError (not a signature, or it does not verify),
    cms.UntrustedSigner (another issuer), DeviceRootsUnavailable (the portal's trust)."""
    return verify_signed_data(der, device_roots())
