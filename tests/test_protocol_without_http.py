"""The check-in and server-URL services take plain data and return plain data: a device can
enroll and run the command loop with no HTTP client and no Django request or response."""

import plistlib

import pytest

from commands.models import QueuedCommand, Status
from commands.server import handle_connect
from devices.checkin import handle_checkin
from devices.models import Device, InventoryReport
from devices.protocol import DeviceRequest, ProtocolError, Reply, serve_device_request
from tests.conftest import new_identity
from tests.simulator import CHECKIN_CT, Response, SimulatedDevice

ENDPOINTS = {"/mdm/checkin": handle_checkin, "/mdm/connect": handle_connect}
LIMIT = 256 * 1024
replies: list[Reply] = []


def service_sender(path: str, body: bytes, headers: dict[str, str]) -> Response:
    """A Sender that calls the services directly: a DeviceRequest in, a Reply out."""
    request = DeviceRequest(
        method="PUT",
        body=body,
        content_type=headers.get("Content-Type", ""),
        mdm_signature=headers.get("Mdm-Signature", ""),
        path=path,
    )
    reply = serve_device_request(request, LIMIT, ENDPOINTS[path])
    replies.append(reply)
    return Response(reply.status, reply.body)


@pytest.fixture
def sim(ca) -> SimulatedDevice:
    certificate, key, _ = new_identity()
    return SimulatedDevice(send=service_sender, certificate=certificate, key=key)


def test_enroll_and_the_command_loop_without_http(sim):
    sim.enroll()
    device = Device.objects.get(udid=sim.udid)
    assert device.state == Device.State.ENROLLED
    assert all(type(reply) is Reply for reply in replies)

    command = sim.idle().plist()
    assert command["Command"]["RequestType"] == "DeviceInformation"
    answer = sim.report(command["CommandUUID"], QueryResponses={"DeviceName": "Service iPhone"})
    assert answer.status == 200
    row = QueuedCommand.objects.get(command__uuid=command["CommandUUID"])
    assert row.status == Status.ACKNOWLEDGED
    assert InventoryReport.objects.filter(device=device, kind="DeviceInformation").exists()
    assert Device.objects.get(pk=device.pk).device_name == "Service iPhone"


def test_check_in_messages_reach_the_server_url_too(sim):
    assert sim.checkin("Authenticate", path="/mdm/connect", Topic=sim.topic).status == 200
    assert Device.objects.get(udid=sim.udid).state == Device.State.PENDING


def test_refusals_are_replies_with_their_status(sim):
    sim.enroll()
    body = plistlib.dumps({"UDID": sim.udid, "Status": "Idle"})
    unsigned = DeviceRequest(method="PUT", body=body, content_type=CHECKIN_CT)
    reply = serve_device_request(unsigned, LIMIT, handle_connect)
    assert (reply.status, reply.content_type) == (403, "text/plain")
    assert b"no client certificate and no Mdm-Signature" in reply.body
    wrong_method = serve_device_request(
        DeviceRequest(method="GET", body=b""), LIMIT, handle_connect
    )
    assert (wrong_method.status, wrong_method.headers) == (405, {"Allow": "PUT"})
    too_big = serve_device_request(DeviceRequest(method="PUT", body=b"x" * 11), 10, handle_connect)
    assert too_big.status == 413


def test_a_handler_raises_protocol_error_for_the_pipeline_to_answer(sim):
    with pytest.raises(ProtocolError) as raised:
        handle_checkin({"MessageType": "Bogus", "UDID": sim.udid}, None, None)
    assert raised.value.status == 400 and "unknown MessageType" in raised.value.reason
