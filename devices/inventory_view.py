"""A device's inventory as the sections of its page: the latest answer of each query command,
with when it was reported, secrets masked (mdm_portal.masking), lists as rows."""

from django.utils import timezone

from mdm_portal.masking import masked

from .models import Device, InventoryReport

Kind = InventoryReport.Kind

# (kind, section title, anchor) in page order; kinds without a report are listed as missing.
SECTIONS: list[tuple[str, str, str]] = [
    (Kind.DEVICE_INFORMATION, "Device information", "information"),
    (Kind.SECURITY_INFO, "Security", "security"),
    (Kind.PROFILE_LIST, "Installed profiles", "profiles"),
    (Kind.INSTALLED_APPLICATION_LIST, "Installed apps", "apps"),
    (Kind.CERTIFICATE_LIST, "Certificates", "certificates"),
    (Kind.RESTRICTIONS, "Restrictions", "restrictions"),
    (Kind.PROVISIONING_PROFILE_LIST, "Provisioning profiles", "provisioning"),
    (Kind.MANAGED_APPLICATION_LIST, "Managed apps", "managed-apps"),
]
# Kinds always shown (with "not reported yet"); the others only once a device answered them.
ALWAYS = {
    Kind.DEVICE_INFORMATION,
    Kind.SECURITY_INFO,
    Kind.PROFILE_LIST,
    Kind.INSTALLED_APPLICATION_LIST,
    Kind.CERTIFICATE_LIST,
    Kind.RESTRICTIONS,
}


def restriction_rows(data: dict) -> list[dict]:
    """GlobalRestrictions as rows: kind (restrictedBool, restrictedValue, intersection, union),
    the restriction, and its value."""
    rows = []
    for kind, entries in sorted((data.get("GlobalRestrictions") or {}).items()):
        if not isinstance(entries, dict):
            rows.append({"kind": kind, "name": "", "value": entries})
            continue
        for name, setting in sorted(entries.items()):
            value = setting
            if isinstance(setting, dict) and len(setting) == 1:
                value = next(iter(setting.values()))  # {"value": false} or {"values": [...]}
            rows.append({"kind": kind, "name": name, "value": value})
    return rows


def _rows(device: Device, kind: str) -> list:
    if kind == Kind.PROFILE_LIST:
        return list(device.profiles.order_by("display_name", "identifier"))
    if kind == Kind.INSTALLED_APPLICATION_LIST:
        return list(device.applications.order_by("name", "identifier"))
    if kind == Kind.CERTIFICATE_LIST:
        now = timezone.now()
        certificates = list(device.installed_certs.order_by("common_name", "sha256"))
        for certificate in certificates:
            certificate.days_left = (
                (certificate.not_after - now).days if certificate.not_after else None
            )
        return certificates
    return []


def inventory_sections(device: Device) -> list[dict]:
    """The page's inventory sections, each with `kind`, `title`, `anchor`, `reported_at`
    (None: never reported), `data` (the answer, secrets hidden) and `rows`."""
    reports = {report.kind: report for report in device.reports.all()}
    sections = []
    for kind, title, anchor in SECTIONS:
        report = reports.get(kind)
        if report is None and kind not in ALWAYS:
            continue
        data = masked(report.data) if report is not None else None
        if kind == Kind.DEVICE_INFORMATION and isinstance(data, dict):
            data = dict(sorted(data.items()))
        section = {
            "kind": kind,
            "title": title,
            "anchor": anchor,
            "reported_at": report.reported_at if report is not None else None,
            "data": data,
            "rows": _rows(device, kind) if report is not None else [],
        }
        if kind == Kind.RESTRICTIONS and isinstance(data, dict):
            section["rows"] = restriction_rows(data)
            section["by_profile"] = data.get("ProfileRestrictions")
        sections.append(section)
    return sections
