"""Staff users for the UI tests: one per role, logged in through Django's test client, and
logging in through the login page in a browser test."""

import re

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


def log_in(page, username: str) -> None:
    """Log in through the login page with a Playwright `page` (a user made by make_user)."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
