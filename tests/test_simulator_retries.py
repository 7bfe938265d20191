"""A simulated device when the portal is unreachable or fails, and when a command comes twice:
against a scripted portal (httpx's MockTransport), no server. The device keeps an answer the
portal has not taken and sends it again; the proxy's 502 page and connection errors are told
apart from the portal's own 5xx; a command sent again after its answer was taken is counted
as executed twice."""

import plistlib

import httpx

from simulator.device import Fleet, SimulatedDevice
from simulator.report import Stats, summary_text
from simulator.state import new_device
from tests.simulator_support import run_async

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
)
COMMAND = {
    "CommandUUID": "CMD-A",
    "Command": {"RequestType": "DeviceInformation", "Queries": ["DeviceName"]},
}


def scripted_device(script):
    """A device whose every PUT is answered by the next step of `script` (a function of the
    report, returning an httpx.Response or raising)."""
    stats = Stats()
    fleet = Fleet(url="https://portal.test", token=None, stats=stats, client_cert=True)
    state = new_device(0)
    state.enrolled, state.sign_message = True, False
    state.server_url = "https://portal.test/mdm/connect"
    reports = []

    def handle(request: httpx.Request) -> httpx.Response:
        report = plistlib.loads(request.content)
        reports.append((report.get("CommandUUID"), report["Status"]))
        return script.pop(0)(report)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    fleet.client = lambda *args, **kwargs: client
    return SimulatedDevice(state, fleet), stats, reports


def ok(body: bytes = b"") -> httpx.Response:
    return httpx.Response(200, content=body)


def refused(report) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


async def polls(device: SimulatedDevice, count: int) -> None:
    for _ in range(count):
        await device.poll()


def test_answers_are_kept_until_taken_and_a_command_again_after_is_a_duplicate():
    command = plistlib.dumps(COMMAND)
    script = [
        refused,  # Idle: the portal is down
        lambda r: ok(command),  # Idle: command A
        lambda r: httpx.Response(502, content=NGINX_502),  # A's answer: gunicorn restarting
        lambda r: ok(command),  # A's answer sent again, taken; A comes again: executed twice
        lambda r: httpx.Response(500, content=b"Server Error"),  # the portal itself fails
        lambda r: ok(),  # the second answer sent again, taken
    ]
    device, stats, reports = scripted_device(script)
    run_async(polls(device, 4))

    assert reports == [
        (None, "Idle"),
        (None, "Idle"),
        ("CMD-A", "Acknowledged"),
        ("CMD-A", "Acknowledged"),  # kept, sent again: not an Idle
        ("CMD-A", "Acknowledged"),
        ("CMD-A", "Acknowledged"),
    ]
    assert script == []
    assert stats.duplicates == 1
    assert stats.duplicate_examples == [
        {
            "udid": device.state.udid,
            "command_uuid": "CMD-A",
            "request_type": "DeviceInformation",
            "first_status": "Acknowledged",
        }
    ]
    assert dict(stats.unreachable) == {
        "connection error (ConnectError)": 1,
        "HTTP 502 from the proxy": 1,
    }
    assert sum(stats.unreachable_seconds.values()) == 2
    assert dict(stats.portal_5xx) == {"poll: HTTP 500": 1}
    assert stats.resent_reports == 2
    assert stats.problems == 2  # the duplicate and the portal's 500; unreachable is not one
    assert device.state.executed == {"CMD-A": "Acknowledged"}
    assert device.pending_report is None and device.failures == 0
    assert device.state.udid in stats.last_exchange
    text = summary_text(stats)
    assert "executed twice (sent again after an answer): 1" in text
    assert "5xx from the portal: 1" in text


def test_failures_make_the_next_poll_sooner():
    device, _stats, _reports = scripted_device([refused, refused, refused])
    assert device.retry_delay(30) == 30
    run_async(polls(device, 3))
    assert device.failures == 3
    assert device.retry_delay(30) == 4
    assert device.retry_delay(3) == 3
