"""Staff users for the UI tests: one per role, logged in through Django's test client."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mdm_portal.roles import ADMIN, OPERATOR, VIEWER, set_role

PASSWORD = "correct horse battery staple"


def make_user(username: str, role: str | None):
    user = get_user_model().objects.create_user(username, "", PASSWORD)
    if role is not None:
        set_role(user, role)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff(db) -> dict[str, Client]:
    """A logged-in client for each role, and one for a user with no role."""
    return {
        role: client_for(make_user(f"{role or 'nobody'}-user", role))
        for role in (VIEWER, OPERATOR, ADMIN, None)
    }
