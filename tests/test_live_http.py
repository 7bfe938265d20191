"""The whole enrollment and command loop over real HTTP, against a live server."""

import httpx
import pytest

from certs.ca import ensure_ca
from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device
from tests.conftest import new_identity
from tests.simulator import Response, SimulatedDevice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def http_device(live_server, settings):
    settings.MDM_CLIENT_CERT_HEADER = "X-Ssl-Client-Cert"
    ensure_ca(actor="tests")
    certificate, key, _ = new_identity()
    client = httpx.Client(base_url=live_server.url, timeout=10)

    def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
        response = client.put(path, content=body, headers=headers)
        return Response(response.status_code, response.content)

    yield lambda **kw: SimulatedDevice(send=send, certificate=certificate, key=key, **kw)
    client.close()


@pytest.mark.parametrize("auth", ["signature", "header"])
def test_enroll_receive_and_answer_over_http(http_device, auth):
    sim = http_device(auth=auth)
    sim.enroll()
    device = Device.objects.get(udid=sim.udid)
    assert device.state == Device.State.ENROLLED
    QueuedCommand.objects.filter(device=device).delete()
    command = enqueue(device, "DeviceInformation", {"Queries": ["DeviceName"]})
    delivered = sim.idle().plist()
    assert delivered["CommandUUID"] == command.uuid
    answer = sim.report(command.uuid, QueryResponses={"DeviceName": "Over the wire"})
    assert answer.status == 200 and answer.body == b""
    assert QueuedCommand.objects.get(command=command).status == Status.ACKNOWLEDGED
    assert Device.objects.get(pk=device.pk).device_name == "Over the wire"
