"""The DEP API client against the stand-in over real HTTP: the OAuth session and when a new one
is taken, the headers, the retries of 429 / 5xx / network errors, and Apple's answers."""

import datetime as dt

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from enrollment.dep_client import DepClient, DepError, error_from
from enrollment.dep_models import DepServer
from tests.dep_support import make_server

pytestmark = pytest.mark.django_db


def account(server: DepServer) -> dict:
    with DepClient(server) as client:
        return client.account()


def test_the_session_is_oauth_signed_and_every_request_carries_it(dep, dep_server):
    assert account(dep_server)["org_name"] == "Example School"
    assert dep.paths() == ["GET /session", "GET /account"]
    session, request = dep.requests
    assert session.headers["authorization"].startswith('OAuth realm="ADM"')
    assert "x-adm-auth-session" not in session.headers
    token = request.headers["x-adm-auth-session"]
    assert token in dep.sessions
    assert request.headers["x-server-protocol-version"] == "3"
    dep_server.refresh_from_db()
    assert bytes(dep_server.session_token).decode() == token
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT session_token FROM enrollment_depserver")
        assert token.encode() not in bytes(cursor.fetchone()[0])


def test_the_stored_session_is_shared_by_the_next_client(dep, dep_server):
    account(dep_server)
    account(DepServer.objects.get(pk=dep_server.pk))
    assert dep.paths() == ["GET /session", "GET /account", "GET /account"]


def test_a_json_body_is_sent_as_json(dep, dep_server):
    with DepClient(dep_server) as client:
        client.fetch_devices(limit=5)
    fetch = dep.requests[-1]
    assert fetch.headers["content-type"] == "application/json;charset=UTF8"
    assert fetch.body == {"limit": 5}


def test_a_401_takes_a_new_session_and_the_request_is_sent_again(dep, dep_server):
    account(dep_server)
    dep.expire_sessions()
    assert account(dep_server)["server_name"] == "Stand-in MDM"
    assert dep.paths()[2:] == ["GET /account", "GET /session", "GET /account"]
    assert dep.sessions_issued == 2


def test_a_403_forbidden_takes_a_new_session(dep, dep_server):
    account(dep_server)
    dep.fail(403, "FORBIDDEN", path="/account")
    account(dep_server)
    assert dep.paths()[2:] == ["GET /account", "GET /session", "GET /account"]


def test_a_new_session_only_once_per_request(dep, dep_server):
    account(dep_server)
    dep.fail(401, "UNAUTHORIZED", path="/account", times=5)
    with pytest.raises(DepError) as refused:
        account(dep_server)
    assert refused.value.status == 401
    assert dep.paths()[2:] == ["GET /account", "GET /session", "GET /account"]


def test_another_403_is_apples_answer_and_takes_no_new_session(dep, dep_server):
    account(dep_server)
    dep.fail(403, "T_C_NOT_SIGNED", path="/account")
    with pytest.raises(DepError) as refused:
        account(dep_server)
    assert (refused.value.status, refused.value.code) == (403, "T_C_NOT_SIGNED")
    assert dep.sessions_issued == 1 and dep.paths()[2:] == ["GET /account"]


def test_wrong_credentials_fail_at_the_session_without_a_loop(dep, db):
    server = make_server(dep, consumer_secret="not-the-secret")
    with pytest.raises(DepError) as refused:
        account(server)
    assert refused.value.status == 401
    assert dep.paths() == ["GET /session"] and dep.sessions_issued == 0


def test_a_429_waits_as_long_as_retry_after_says(dep, dep_server):
    dep.fail(429, "", retry_after=7, path="/account")
    account(dep_server)
    assert dep.waits == [7]
    assert dep.paths() == ["GET /session", "GET /account", "GET /account"]


def test_a_retry_after_beyond_the_bound_is_left_to_the_next_run(dep, dep_server, settings):
    settings.MDM_DEP_RETRY_MAX_SECONDS = 60
    dep.fail(429, "", retry_after=3600, path="/account")
    with pytest.raises(DepError) as refused:
        account(dep_server)
    assert refused.value.status == 429 and dep.waits == []


def test_5xx_is_retried_with_a_doubling_wait_then_reported(dep, dep_server, settings):
    settings.MDM_DEP_RETRY_SECONDS = 2
    dep.fail(500, "", times=10, path="/account")
    with pytest.raises(DepError) as refused:
        account(dep_server)
    assert refused.value.status == 500
    assert dep.waits == [2, 4]  # three tries in all (MDM_DEP_RETRIES=2)
    assert dep.paths().count("GET /account") == 3


def test_a_5xx_then_success(dep, dep_server):
    dep.fail(503, "", times=2, path="/account")
    assert account(dep_server)["org_id"] == "1234567"
    assert dep.paths().count("GET /account") == 3


def test_a_dropped_connection_is_retried(dep, dep_server):
    dep.fail(0, path="/account")
    assert account(dep_server)["org_id"] == "1234567"
    assert len(dep.waits) == 1


def test_apple_unreachable_is_a_network_error_after_the_retries(dep, dep_server):
    dep.stop()
    with pytest.raises(DepError) as refused:
        account(dep_server)
    assert refused.value.status == 0 and refused.value.code == "NETWORK"
    assert "cannot reach" in str(refused.value) and len(dep.waits) == 2


def test_a_new_session_header_in_an_answer_replaces_the_stored_one(dep, dep_server):
    dep.rotate_sessions = True
    account(dep_server)
    rotated = bytes(DepServer.objects.get(pk=dep_server.pk).session_token).decode()
    assert rotated in dep.sessions and rotated != dep.requests[-1].headers["x-adm-auth-session"]
    account(DepServer.objects.get(pk=dep_server.pk))
    assert dep.requests[-1].headers["x-adm-auth-session"] == rotated
    assert dep.sessions_issued == 3 and dep.paths().count("GET /session") == 1


def test_device_details_disown_and_profile_removal_answer_per_serial(dep, dep_server):
    dep.add_device("C02AAA000001")
    dep.add_device("C02AAA000002")
    with DepClient(dep_server) as client:
        details = client.device_details(["C02AAA000001", "OTHERS00001"])
        assert details["C02AAA000001"]["model"] == "iPad (10th generation)"
        assert details["OTHERS00001"]["response_status"] == "NOT_FOUND"
        uuid = client.define_profile({"profile_name": "P", "url": "https://mdm.test/dep/enroll"})
        assigned = client.assign_profile(uuid["profile_uuid"], ["C02AAA000001", "OTHERS00001"])
        assert assigned["devices"] == {"C02AAA000001": "SUCCESS", "OTHERS00001": "NOT_ACCESSIBLE"}
        assert client.remove_profile(["C02AAA000001"]) == {"C02AAA000001": "SUCCESS"}
        assert client.disown(["C02AAA000002"]) == {"C02AAA000002": "SUCCESS"}
    assert "C02AAA000002" not in dep.devices
    assert dep.requests[-2].method == "DELETE" and dep.requests[-2].body == {
        "devices": ["C02AAA000001"]
    }


def test_a_server_without_a_token_is_refused_before_any_request(dep, db):
    server = make_server(None)
    with pytest.raises(DepError) as refused:
        account(server)
    assert refused.value.code == "NO_TOKEN" and dep.requests == []


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("EXPIRED_CURSOR", "EXPIRED_CURSOR", "EXPIRED_CURSOR"),
        ('"INVALID_CURSOR"', "INVALID_CURSOR", "INVALID_CURSOR"),
        ('{"code": "CONFIG_URL_INVALID", "message": "bad url"}', "CONFIG_URL_INVALID", "bad url"),
        ("<html>Bad gateway</html>", "HTTP_400", "<html>Bad gateway</html>"),
    ],
)
def test_apples_error_bodies(body, code, message):
    error = error_from(httpx.Response(400, text=body))
    assert (error.status, error.code, error.message) == (400, code, message)


def test_an_expired_server_token_is_refused_before_any_request(dep, dep_server):
    DepServer.objects.filter(pk=dep_server.pk).update(
        access_token_expiry=timezone.now() - dt.timedelta(minutes=1)
    )
    with pytest.raises(DepError) as refused:
        account(DepServer.objects.get(pk=dep_server.pk))
    assert refused.value.code == "TOKEN_EXPIRED" and "expired" in str(refused.value)
    assert dep.requests == []
