"""The device list as CSV rows, for a spreadsheet: identity, state and dates, never a secret or
a push detail (no UnlockToken, bootstrap token, push token or PushMagic).

Rows are read in chunks from a server-side cursor, so a fleet of any size streams in constant
memory. A cell a spreadsheet would take for a formula (a device can name itself "=HYPERLINK(...)")
is prefixed with an apostrophe.
"""

from collections.abc import Iterator

from django.db.models import QuerySet

# (CSV header, Device field)
CSV_COLUMNS: list[tuple[str, str]] = [
    ("udid", "udid"),
    ("name", "device_name"),
    ("serial_number", "serial_number"),
    ("model", "model"),
    ("model_name", "model_name"),
    ("product_name", "product_name"),
    ("platform", "platform"),
    ("os_version", "os_version"),
    ("build_version", "build_version"),
    ("state", "state"),
    ("group", "group__name"),
    ("supervised", "is_supervised"),
    ("lost_mode", "lost_mode"),
    ("access_rights", "access_rights"),
    ("enrolled_at", "enrolled_at"),
    ("last_seen_at", "last_seen_at"),
    ("inactive_since", "inactive_since"),
    ("token_invalid_at", "token_invalid_at"),
    ("checked_out_at", "checked_out_at"),
]
CHUNK = 2000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_rows(devices: QuerySet) -> Iterator[list[str]]:
    """The header, then one row per device of `devices`, ordered by UDID."""
    yield [header for header, _field in CSV_COLUMNS]
    fields = [field for _header, field in CSV_COLUMNS]
    rows = devices.order_by("udid").values_list(*fields).iterator(chunk_size=CHUNK)
    for row in rows:
        yield [_cell(value) for value in row]
