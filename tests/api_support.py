"""API test support: a token client per role, and managed devices made in bulk."""

import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from devices.models import Device
from mdm_portal.api_tokens import create_token
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.ui_support import make_user

ROLES = (VIEWER, OPERATOR, ADMIN)


def token_client(user, name: str = "script") -> APIClient:
    _token, key = create_token(user, name, actor="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.key = key
    return client


@pytest.fixture
def api(db) -> dict:
    """A token client for each role (token names: "<role>-script"), one for no role."""
    return {
        role: token_client(make_user(f"{role or 'nobody'}-api", role), f"{role or 'nobody'}-script")
        for role in (*ROLES, None)
    }


def managed_devices(count: int, prefix: str = "D", **fields) -> list[Device]:
    """Enrolled devices that can be pushed and sent commands, made with one INSERT."""
    now = timezone.now()
    defaults = {
        "state": Device.State.ENROLLED,
        "enrolled_at": now,
        "authenticated_at": now,
        "last_seen_at": now,
        "platform": "iOS",
        "os_version": "17.4",
        "model_name": "iPhone",
        "product_name": "iPhone15,2",
        "push_token": "ab" * 32,
        "push_magic": "magic",
        "topic": "com.apple.mgmt.External.test",
    }
    Device.objects.bulk_create(
        Device(
            udid=f"{prefix}-{i:05d}",
            serial_number=f"SER{prefix}{i:05d}",
            device_name=f"{prefix} device {i}",
            **{**defaults, **fields},
        )
        for i in range(count)
    )
    return list(Device.objects.filter(udid__startswith=f"{prefix}-").order_by("udid"))


def random_udid() -> str:
    return str(uuid.uuid4()).upper()
