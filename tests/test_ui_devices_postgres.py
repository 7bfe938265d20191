"""On PostgreSQL the device list's search and sorts are served by the indexes of migration
0010: the trigram index must be built on the very expression the search compares, or the
planner cannot use it and a search scans the whole fleet."""

import pytest
from django.db import connection, transaction

from devices.models import Device
from devices.selection import devices_matching

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def plan(queryset, *switched_off: str) -> str:
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE devices_device")
        for method in ("seqscan", *switched_off):  # a small table: make indexes win
            cursor.execute(f"SET LOCAL enable_{method} = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_search_uses_the_trigram_index():
    Device.objects.bulk_create(
        Device(udid=f"UDID-{n}", device_name=f"Phone {n}") for n in range(50)
    )
    # (Only a bitmap scan can read a GIN index: without the others, the planner must use it
    # if it can, and it can only if the index is on the expression the search compares.)
    search = devices_matching({"q": "phone 4"}).order_by()
    assert "device_search_trgm" in plan(search, "indexscan")
    assert set(devices_matching({"q": "PHONE 4"}).values_list("udid", flat=True)) == {
        "UDID-4",
        *{f"UDID-{n}" for n in range(40, 50)},
    }


@pytest.mark.parametrize(
    ("order", "index"),
    [
        (("device_name", "id"), "device_by_name"),
        (("-last_seen_at", "-id"), "device_by_last_seen"),
        (("model_name", "product_name", "id"), "device_by_model"),
        (("platform", "os_version", "id"), "device_by_os"),
    ],
)
def test_each_sort_reads_its_index(order, index):
    assert index in plan(Device.objects.order_by(*order)[:51])
