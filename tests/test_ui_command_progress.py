"""Which devices a command form targets (device=, filter=, group=; devices.selection), every
command with its progress (/commands/, a handful of queries per page), one command with its
payload (secrets masked), its devices per status and their results, the live fragment that
stops polling when nothing waits, and canceling what is still queued."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.http import QueryDict
from django.utils import timezone

from commands.models import ArchivedCommand, Command, QueuedCommand, Status
from commands.queue import cancel_queued, enqueue
from devices.models import Device, DeviceGroup
from devices.selection import SelectionError, devices_matching
from mdm_portal.models import AuditEntry
from tests.test_ui_commands import fast_passwords, make  # noqa: F401 - fast_passwords is autouse

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(db):
    sales = DeviceGroup.objects.create(name="Sales")
    now = timezone.now()
    return {
        "sales": sales,
        "ann": make("IPHONE-ANN", "Ann's iPhone", group=sales),
        "bob": make(
            "IPHONE-BOB", "Bob's iPhone", group=sales, last_seen_at=now - timedelta(days=9)
        ),
        "mac": make("MAC-CAROL", "Carol's Mac", platform="macOS", os_version="14.4.1"),
        "gone": make("IPHONE-GONE", "Old iPhone", group=sales, state=Device.State.CHECKED_OUT),
        "dead": make("IPAD-DEAD", "Dead iPad", token_invalid_at=now, model="iPad13,1"),
    }


def matching(**params) -> set[str]:
    return set(devices_matching(params).values_list("udid", flat=True))


# --- the selection contract ----------------------------------------------------------------------


def test_devices_matching_reads_the_device_list_filter(fleet):
    assert matching(q="carol") == {"MAC-CAROL"}
    assert matching(q="ipad13") == {"IPAD-DEAD"}
    assert matching(state="checked_out") == {"IPHONE-GONE"}
    assert matching(group=str(fleet["sales"].pk)) == {"IPHONE-ANN", "IPHONE-BOB", "IPHONE-GONE"}
    assert matching(platform="macOS", os_version="14") == {"MAC-CAROL"}
    assert matching(os_version="14.4") == {"MAC-CAROL"} and matching(os_version="14.5") == set()
    assert matching(seen="stale") == {"IPHONE-BOB"}
    assert "IPHONE-BOB" not in matching(seen="24h") and "IPHONE-ANN" in matching(seen="7d")
    assert matching(seen="token_invalid") == {"IPAD-DEAD"}
    assert matching(q="", state="") == set(Device.objects.values_list("udid", flat=True))
    params = QueryDict("platform=iOS&seen=stale")
    assert set(devices_matching(params).values_list("udid", flat=True)) == {"IPHONE-BOB"}
    for bad in ({"seen": "sometimes"}, {"state": "lost"}, {"group": "Sales"}):
        with pytest.raises(SelectionError):
            devices_matching(bad)


def test_named_devices_are_listed_in_the_summary(staff, fleet):
    page = staff["operator"].get("/commands/new/?device=IPHONE-ANN&device=MAC-CAROL").text
    assert "2 devices: Ann&#x27;s iPhone, Carol&#x27;s Mac" in page
    unknown = staff["operator"].get("/commands/new/?device=NOPE&type=DeviceLock")
    assert "unknown device(s): NOPE" in unknown.text and 'name="Message"' not in unknown.text


def test_a_filter_targets_every_managed_device_it_matches(staff, fleet):
    target = "/commands/new/?type=DeviceLock&filter=" + quote("platform=iOS")
    page = staff["operator"].get(target).text
    assert "Every device matching platform iOS: 2 devices" in page
    assert "2 more match but are left out" in page  # checked out, push token invalid
    response = staff["operator"].post(target, {"Message": "Hello"})
    assert response.status_code == 302
    assert set(QueuedCommand.objects.values_list("device__udid", flat=True)) == {
        "IPHONE-ANN",
        "IPHONE-BOB",
    }
    nothing = staff["operator"].get("/commands/new/?type=DeviceLock&filter=platform%3DtvOS").text
    assert "No device to send it to" in nothing and "Send DeviceLock" not in nothing
    bad = staff["operator"].get("/commands/new/?type=DeviceLock&filter=seen%3Dyesterday")
    assert "the device filter is not valid" in bad.text and 'name="Message"' not in bad.text


def test_a_group_targets_its_managed_devices(staff, fleet):
    target = f"/commands/new/?type=DeviceLock&group={fleet['sales'].pk}"
    assert "Group “Sales”: 2 devices" in staff["operator"].get(target).text
    assert staff["operator"].post(target, {}).status_code == 302
    assert QueuedCommand.objects.count() == 2
    missing = staff["operator"].post("/commands/new/?type=DeviceLock&group=999", {})
    assert missing.status_code == 400 and "no group with id" in missing.text
    both = staff["operator"].get(f"/commands/new/?device=IPHONE-ANN&group={fleet['sales'].pk}")
    assert "name the devices one way" in both.text


def test_without_targets_the_form_asks_for_devices(staff, fleet):
    page = staff["operator"].get("/commands/new/?type=DeviceLock")
    assert page.status_code == 200 and "No devices chosen yet" in page.text
    assert 'name="group"' in page.text and 'name="Message"' not in page.text
    assert staff["operator"].post("/commands/new/?type=DeviceLock", {}).status_code == 400


# --- progress ------------------------------------------------------------------------------------


def _statuses(command: Command, *statuses: str) -> None:
    rows = list(QueuedCommand.objects.filter(command=command).order_by("id"))
    for row, status in zip(rows, statuses, strict=True):
        row.status = status
        row.answered_at = timezone.now()
        row.save()


def test_the_command_list_counts_devices_per_status_in_a_few_queries(
    staff, fleet, django_assert_max_num_queries
):
    devices = Device.objects.filter(udid__in=["IPHONE-ANN", "IPHONE-BOB", "MAC-CAROL"])
    for _ in range(12):
        enqueue(devices, "DeviceLock", queued_by="tests")
    lock = Command.objects.order_by("id").first()
    _statuses(lock, Status.ACKNOWLEDGED, Status.ERROR, Status.NOT_NOW)
    archived = QueuedCommand.objects.get(command=lock, status=Status.ACKNOWLEDGED)
    ArchivedCommand.objects.create(
        device=archived.device,
        command=lock,
        request_type="DeviceLock",
        status="acknowledged",
        created_at=archived.created_at,
        answered_at=archived.answered_at,
    )
    archived.delete()
    viewer = staff["viewer"]
    viewer.get("/commands/")  # sessions and the like, once
    with django_assert_max_num_queries(8):
        page = viewer.get("/commands/").text
    assert page.count('class="progress"') == 12
    assert "Acknowledged 1" in page and "Error 1" in page and "Not Now 1" in page
    assert 'hx-trigger="every 5s"' in page  # commands still wait: the table refreshes
    assert viewer.get("/commands/?request_type=DeviceLock&queued_by=test").status_code == 200


def test_the_command_page_shows_the_payload_without_secrets_and_the_results(staff, make_device):
    enrolled = make_device()
    assert enrolled.authenticate(ProductName="Mac14,2", ModelName="MacBook Air").status == 200
    assert enrolled.token_update().status == 200
    QueuedCommand.objects.all().delete()
    device = Device.objects.get(udid=enrolled.udid)
    lock = enqueue(device, "DeviceLock", {"Message": "Lost?", "PIN": "654321"}, queued_by="t")
    info = enqueue(device, "DeviceInformation", {"Queries": ["DeviceName"]}, queued_by="t")
    assert enrolled.idle().plist()["CommandUUID"] == lock.uuid
    enrolled.report(
        lock.uuid,
        "Error",
        ErrorChain=[
            {
                "ErrorCode": 12021,
                "ErrorDomain": "MCMDMErrorDomain",
                "LocalizedDescription": "No PIN",
            }
        ],
    )
    enrolled.idle()
    enrolled.report(info.uuid, QueryResponses={"DeviceName": "Reception iPad"})
    page = staff["viewer"].get(f"/commands/{lock.uuid}/").text
    assert "654321" not in page and "•••••• (hidden)" in page and "Lost?" in page
    assert "MCMDMErrorDomain 12021: No PIN" in page
    assert f'href="/devices/{enrolled.udid}/"' in page
    answered = staff["viewer"].get(f"/commands/{info.uuid}/").text
    assert "&quot;DeviceName&quot;: &quot;Reception iPad&quot;" in answered
    assert "hx-trigger" not in answered and "Nothing is waiting" in answered


def test_the_live_part_polls_while_devices_wait_and_filters_by_status(staff, fleet):
    devices = Device.objects.filter(udid__in=["IPHONE-ANN", "IPHONE-BOB"])
    command = enqueue(devices, "DeviceLock", queued_by="tests")
    live = staff["viewer"].get(f"/commands/{command.uuid}/", headers={"HX-Request": "true"})
    assert live.status_code == 200 and "<html" not in live.text
    assert 'hx-trigger="every 3s"' in live.text and "Waiting for 2 of 2" in live.text
    _statuses(command, Status.ACKNOWLEDGED, Status.ERROR)
    done = staff["viewer"].get(f"/commands/{command.uuid}/", headers={"HX-Request": "true"})
    assert "hx-trigger" not in done.text
    errors = staff["viewer"].get(f"/commands/{command.uuid}/?status=error").text
    assert errors.count("/devices/IPHONE-") == 1


def test_a_sent_erase_is_not_waited_for(staff, fleet):
    command = enqueue(Device.objects.filter(udid="IPHONE-ANN"), "EraseDevice", queued_by="t")
    QueuedCommand.objects.filter(command=command).update(status=Status.SENT)
    live = staff["viewer"].get(f"/commands/{command.uuid}/", headers={"HX-Request": "true"})
    assert "hx-trigger" not in live.text


# --- canceling -----------------------------------------------------------------------------------


def test_an_operator_cancels_what_is_still_queued(staff, fleet):
    devices = Device.objects.filter(udid__in=["IPHONE-ANN", "IPHONE-BOB", "MAC-CAROL"])
    command = enqueue(devices, "DeviceLock", queued_by="tests")
    rows = list(QueuedCommand.objects.filter(command=command).order_by("device__udid"))
    rows[0].status, rows[1].status = Status.SENT, Status.NOT_NOW
    QueuedCommand.objects.bulk_update(rows[:2], ["status"])
    assert (
        "Cancel what is still queued" not in staff["viewer"].get(f"/commands/{command.uuid}/").text
    )
    page = staff["operator"].get(f"/commands/{command.uuid}/").text
    assert "Cancel what is still queued (2 devices)" in page
    cancel = f"/commands/{command.uuid}/cancel/"
    assert staff["viewer"].post(cancel, {"confirm": "yes"}).status_code == 403
    unconfirmed = staff["operator"].post(cancel, {})
    assert unconfirmed.status_code == 400 and "Tick the confirmation" in unconfirmed.text
    assert staff["operator"].get(cancel).status_code == 405
    operator = staff["operator"]
    operator.defaults["REMOTE_ADDR"] = "198.51.100.3"
    response = operator.post(cancel, {"confirm": "yes"})
    assert response.status_code == 302
    statuses = dict(
        QueuedCommand.objects.filter(command=command).values_list("device__udid", "status")
    )
    assert statuses == {"IPHONE-ANN": "sent", "IPHONE-BOB": "canceled", "MAC-CAROL": "canceled"}
    entry = AuditEntry.objects.get(action="command.canceled")
    assert (entry.actor, entry.address, entry.details["canceled"]) == (
        "operator-user",
        "198.51.100.3",
        2,
    )
    assert "Canceled 2 device(s)" in operator.get(response["Location"]).text


def test_cancel_queued_leaves_answered_rows_alone(fleet):
    command = enqueue(Device.objects.filter(udid__in=["IPHONE-ANN", "IPHONE-BOB"]), "DeviceLock")
    _statuses(command, Status.ACKNOWLEDGED, Status.QUEUED)
    assert cancel_queued(command, by="tests") == 1
    assert cancel_queued(command, by="tests") == 0
    assert set(QueuedCommand.objects.values_list("status", flat=True)) == {
        "acknowledged",
        "canceled",
    }


def test_the_command_pages_need_login_and_a_role(client, staff, fleet):
    command = enqueue(Device.objects.filter(udid="IPHONE-ANN"), "DeviceLock", queued_by="t")
    pages = ["/commands/", "/commands/new/", f"/commands/{command.uuid}/"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        assert staff[None].get(path).status_code == 403
    assert client.post(f"/commands/{command.uuid}/cancel/", {"confirm": "yes"}).status_code == 302
    assert staff["viewer"].get("/commands/NOT-A-COMMAND/").status_code == 404


def test_lists_sort_and_page_from_the_request_and_survive_bad_pages(staff, fleet):
    devices = Device.objects.filter(udid__in=["IPHONE-ANN", "IPHONE-BOB", "MAC-CAROL"])
    lock = enqueue(devices, "DeviceLock", queued_by="tests")
    enqueue(devices, "ProfileList", queued_by="tests")
    _statuses(lock, Status.ERROR, Status.ACKNOWLEDGED, Status.QUEUED)
    viewer = staff["viewer"]
    by_type = viewer.get("/commands/?sort=request_type").text
    assert by_type.index(">DeviceLock</a>") < by_type.index(">ProfileList</a>")
    assert viewer.get("/commands/?sort=-request_type").text.index(">ProfileList</a>") < (
        viewer.get("/commands/?sort=-request_type").text.index(">DeviceLock</a>")
    )
    by_status = viewer.get(f"/commands/{lock.uuid}/?sort=row_status").text
    assert by_status.index("badge acknowledged") < by_status.index("badge error")
    for path in ("/commands/?page=abc", "/commands/?page=99", f"/commands/{lock.uuid}/?page=x"):
        assert viewer.get(path).status_code == 200, path
    live = viewer.get(f"/commands/{lock.uuid}/?status=queued", headers={"HX-Request": "true"})
    assert f'hx-get="/commands/{lock.uuid}/?status=queued"' in live.text


def test_one_rule_masks_secrets_in_commands_results_and_profiles():
    from commands.display import readable
    from enrollment.payloads import entry
    from mdm_portal.masking import MASKED

    shown = readable(
        {
            "PIN": "123456",
            "UnlockToken": b"\x00\x01",
            "AutoSetupAdminAccounts": [{"shortName": "it", "passwordHash": b"salted"}],
            "ActivationLockBypassCode": "ABCD-EFGH",
            "PINRequiredForDeviceLock": True,
            "Message": "Call IT",
            "Payload": b"x" * 2048,
        }
    )
    assert shown == {
        "PIN": MASKED,
        "UnlockToken": MASKED,
        "AutoSetupAdminAccounts": [{"shortName": "it", "passwordHash": MASKED}],
        "ActivationLockBypassCode": MASKED,
        "PINRequiredForDeviceLock": True,
        "Message": "Call IT",
        "Payload": "<data, 2,048 bytes>",
    }
    assert entry("PIN", "123456").text == MASKED  # a profile's key, by the same rule
