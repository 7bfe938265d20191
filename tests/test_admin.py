"""The admin (/admin/) is a read-only window on protocol state.

The models come from the admin's own registry: every registered model outside the allow-listed
apps (Django's users and groups, celery beat's schedule, which stay editable) is a protocol
model, so one registered later is covered without editing this module - `protocol_state` must
make a row of it, or its tests fail saying so. For each: the changelist and a change page render
for a superuser and show no secret; every add, change or delete is refused (403) and changes
nothing in the database.
"""

import hashlib
import plistlib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Model
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule
from django_celery_results.models import GroupResult, TaskResult

from certs.challenges import issue_challenge
from certs.models import (
    CertificateAuthority,
    PushCertificate,
    ScepChallenge,
    ScepRequest,
    ServerIdentity,
)
from certs.pushcert_csr import create_push_csr
from commands.apns import push_devices
from commands.models import Command
from commands.queue import enqueue
from commands.retention import archive_answered
from declarations.assets import serve_data
from declarations.models import DeclarationSet
from declarations.sets import add_declarations
from devices.models import Device, DeviceGroup
from enrollment.library import assign, upload_profile
from enrollment.models import Enrollment
from mdm_portal.admin import ReadOnlyAdmin
from mdm_portal.encryption import EncryptedBinaryField
from tests.declarative_support import (
    PASSCODE,
    declaration_status,
    declarative,
    give,
    json_of,
    processed,
    status_report,
)
from tests.webhook_receiver import closed_port
from webhooks.delivery import deliver_pass
from webhooks.registry import create_webhook

pytestmark = pytest.mark.django_db

EDITABLE_APPS = {"auth", "django_celery_beat"}


def label(model: type[Model]) -> str:
    return model._meta.label


REGISTRY = admin.site._registry
PROTOCOL_MODELS = sorted(
    (model for model in REGISTRY if model._meta.app_label not in EDITABLE_APPS), key=label
)
EDITABLE_MODELS = sorted(
    (model for model in REGISTRY if model._meta.app_label in EDITABLE_APPS), key=label
)
# The protocol state the admin must show (read only): a model missing here is a regression.
EXPECTED = {
    "devices.Device",
    "commands.Command",
    "commands.QueuedCommand",
    "commands.ArchivedCommand",
    "commands.PushAttempt",
    "certs.CertificateAuthority",
    "certs.IssuedCertificate",
    "certs.PushCertificate",
    "certs.ServerIdentity",
    "certs.PushCertificateRequest",
    "certs.ScepChallenge",
    "certs.ScepRequest",
    "enrollment.Enrollment",
    "enrollment.Profile",
    "enrollment.ProfileAssignment",
    "declarations.Declaration",
    "declarations.DeclarationRevision",
    "declarations.DeclarationSet",
    "declarations.DeclarationState",
    "declarations.DeviceDeclarations",
    "declarations.ServedAsset",
    "mdm_portal.Alert",
    "mdm_portal.AuditEntry",
    "webhooks.Webhook",
    "webhooks.WebhookEvent",
    "webhooks.Delivery",
    "webhooks.DeliveryAttempt",
}
# Secrets that are not encrypted fields (those are secrets by definition): never displayed.
NAMED_SECRETS = {
    "certs.ScepChallenge": {"challenge_sha256"},
    "certs.ScepRequest": {"csr_der"},  # holds the challenge password in clear
    "commands.Command": {"payload"},  # EraseDevice / DeviceLock PINs, profiles
    "commands.QueuedCommand": {"result"},  # e.g. an ActivationLockBypassCode
    "enrollment.Profile": {"payload"},  # passwords in payloads
    "webhooks.WebhookEvent": {"body"},  # command results, e.g. an ActivationLockBypassCode
}

UNLOCK_TOKEN = b"unlock-token-e1f7a2"
BOOTSTRAP_TOKEN = b"bootstrap-token-9c4d06"
PIN = "730519"
BYPASS_CODE = "bypass-code-52ab88"
WIFI_PASSWORD = "wifi-password-3be1c0"
CSR_MARKER = b"csr-challenge-password-77d0e4"
WEBHOOK_SECRET = "webhook-secret-0d3a9f6b21"
ASSET_SECRET = "asset-data-secret-5e72c1"


def secret_fields(model: type[Model]) -> set[str]:
    encrypted = {f.name for f in model._meta.fields if isinstance(f, EncryptedBinaryField)}
    return encrypted | NAMED_SECRETS.get(label(model), set())


def key_line(pem: bytes) -> str:
    """A line from the middle of a private key's PEM: it must appear nowhere."""
    lines = pem.decode().splitlines()
    return lines[len(lines) // 2]


@dataclass
class ProtocolState:
    secrets: list[str] = field(default_factory=list)


def url(model: type[Model], view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def sample(model: type[Model]) -> Model:
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"protocol_state makes no {label(model)} row: add one to test it"
    return obj


def form_data(obj: Model, **overrides) -> dict:
    """What a change form would post for `obj` (text fields only), with `overrides`."""
    data = {
        name: value
        for name, value in model_to_dict(obj).items()
        if value is not None and not isinstance(value, bytes | memoryview)
    }
    return {**data, **overrides}


def snapshot() -> dict[str, list[dict]]:
    return {label(m): list(m._default_manager.order_by("pk").values()) for m in PROTOCOL_MODELS}


def answer_all(sim, **result) -> None:
    """Poll, and acknowledge every command the device is sent, each answer holding `result`."""
    response = sim.idle()
    while response.body:
        response = sim.report(response.plist()["CommandUUID"], **result)
        assert response.status == 200


@pytest.fixture
def protocol_state(ca, make_device) -> ProtocolState:
    """A row of every protocol model, made the way the portal makes them, with known secrets."""
    state = ProtocolState()
    # A webhook whose receiver is down: every event below is in its outbox, one attempt failed.
    create_webhook(f"http://127.0.0.1:{closed_port()}/hook", secret=WEBHOOK_SECRET, actor="tests")
    sim = make_device(unlock_token=UNLOCK_TOKEN)
    mac = {"ProductName": "Mac14,2", "ModelName": "MacBook Air", "OSVersion": "14.5"}
    assert sim.authenticate(**mac).status == 200
    assert sim.token_update().status == 200
    assert sim.checkin("SetBootstrapToken", BootstrapToken=BOOTSTRAP_TOKEN).status == 200
    device = Device.objects.get(udid=sim.udid)
    device.group = DeviceGroup.objects.create(name="Staff Macs")
    device.save(update_fields=["group"])

    # The initial inventory answered and archived; a secret answer; a PIN waiting.
    answer_all(sim)
    assert archive_answered(timedelta(0)) > 0
    enqueue(device, "ActivationLockBypassCode")
    answer_all(sim, ActivationLockBypassCode=BYPASS_CODE)
    enqueue(device, "DeviceLock", {"PIN": PIN})
    push_devices([device.pk], "manual")  # no push certificate yet: an attempt and an alert

    # The profile library (InstallProfile signs with the profile-signing server identity).
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": "com.example.wifi",
        "PayloadUUID": "0B5B86C2-7A52-4B8C-9D0E-7D7A2C1F0A11",
        "PayloadDisplayName": "Office Wi-Fi",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.wifi.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": "com.example.wifi.1",
                "PayloadUUID": "1C6C97D3-8B63-4C9D-8E1F-8E8B3D2A1B22",
                "SSID_STR": "Office",
                "Password": WIFI_PASSWORD,
            }
        ],
    }
    assign(upload_profile(plistlib.dumps(profile)), device=device, by="tests")

    # Declarations: a set with a configuration and served data, synced and reported.
    asset = serve_data("notes", ASSET_SECRET.encode(), "text/plain", by="tests")
    give(sim, PASSCODE, set_name="Staff declarations")
    add_declarations(DeclarationSet.objects.get(name="Staff declarations"), [asset])
    items = json_of(declarative(sim, "declaration-items"))["Declarations"]
    token = items["Configurations"][0]["ServerToken"]
    report = processed(configurations=[declaration_status("passcode", token)])
    assert declarative(sim, "status", status_report(report)).status == 200

    # Certificates and SCEP.
    Enrollment.objects.create(name="Staff")
    challenge = issue_challenge()
    challenge_sha256 = hashlib.sha256(challenge.encode()).hexdigest()
    ScepRequest.objects.create(
        transaction_id="T-1",
        message_type="PKCSReq",
        subject="CN=device",
        csr_der=CSR_MARKER,
        signer_certificate_der=b"signer",
        challenge=ScepChallenge.objects.get(challenge_sha256=challenge_sha256),
    )
    push_request = create_push_csr()
    push_key = b"-----BEGIN PRIVATE KEY-----\npush-private-key-41c9d2\n-----END PRIVATE KEY-----\n"
    PushCertificate.objects.create(
        topic="com.apple.mgmt.External.admin",
        certificate_pem="-",
        private_key_pem=push_key,
        not_after=timezone.now() + timedelta(days=300),
    )
    TaskResult.objects.create(task_id="task-1", status="SUCCESS")
    GroupResult.objects.create(group_id="group-1")
    assert deliver_pass()["retrying"] == 1  # the head of the device's events

    state.secrets = [
        WEBHOOK_SECRET,
        ASSET_SECRET,
        UNLOCK_TOKEN.decode(),
        BOOTSTRAP_TOKEN.decode(),
        PIN,
        BYPASS_CODE,
        WIFI_PASSWORD,
        CSR_MARKER.decode(),
        challenge,
        challenge_sha256,
        key_line(push_key),
        key_line(bytes(push_request.private_key_pem)),
        *(key_line(bytes(ca.private_key_pem)) for ca in CertificateAuthority.objects.all()),
        *(key_line(bytes(s.private_key_pem)) for s in ServerIdentity.objects.all()),
    ]
    return state


# --- the registry ------------------------------------------------------------------------------


def test_every_protocol_model_is_in_the_admin_read_only():
    assert {label(model) for model in PROTOCOL_MODELS} >= EXPECTED
    for model in PROTOCOL_MODELS:
        assert isinstance(REGISTRY[model], ReadOnlyAdmin), label(model)
        model_admin = REGISTRY[model]
        assert not model_admin.actions, label(model)
        listed = {*model_admin.list_display, *model_admin.search_fields}
        listed |= {f if isinstance(f, str) else f[0] for f in model_admin.list_filter}
        assert not listed & secret_fields(model), label(model)


# --- each protocol model -----------------------------------------------------------------------


@pytest.mark.parametrize("model", PROTOCOL_MODELS, ids=label)
def test_changelist_and_change_pages_render_without_secrets(admin_client, protocol_state, model):
    model_admin = REGISTRY[model]
    sample(model)
    rows = model._default_manager.order_by("pk").values_list("pk", flat=True)
    pages = [url(model, "changelist"), *(url(model, "change", pk) for pk in rows)]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        leaked = [secret for secret in protocol_state.secrets if secret in html]
        assert not leaked, f"{page} shows {leaked}"
        if "adminform" not in response.context_data:
            continue  # the changelist
        # A change page is a view: no form field, and no secret among the fields it shows.
        form = response.context_data["adminform"].form
        assert not form.fields, f"{page}: editable {sorted(form.fields)}"
        fieldsets = model_admin.get_fieldsets(response.wsgi_request, form.instance)
        assert not set(flatten_fieldsets(fieldsets)) & secret_fields(model), page


@pytest.mark.parametrize("model", PROTOCOL_MODELS, ids=label)
def test_add_change_and_delete_are_refused(admin_client, protocol_state, model):
    obj = sample(model)
    before = snapshot()
    data = form_data(obj)
    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.post(url(model, "add"), data).status_code == 403
    assert admin_client.post(url(model, "change", obj.pk), data).status_code == 403
    assert admin_client.get(url(model, "delete", obj.pk)).status_code == 403
    assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    # No actions: a bulk delete posted to the changelist just shows the list again.
    bulk = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    assert admin_client.post(url(model, "changelist"), bulk).status_code == 200
    assert snapshot() == before


# --- what the admin used to let through -------------------------------------------------------


def test_a_command_with_an_unknown_request_type_and_a_typed_in_count_is_not_created(
    admin_client, protocol_state
):
    before = Command.objects.count()
    response = admin_client.post(
        url(Command, "add"),
        {"uuid": "ADMIN-1", "request_type": "Bogus", "queued_by": "admin", "device_count": 10000},
    )
    assert response.status_code == 403
    assert Command.objects.count() == before
    assert not Command.objects.filter(request_type="Bogus").exists()


def test_a_device_with_an_empty_udid_is_not_created(admin_client, protocol_state):
    before = Device.objects.count()
    response = admin_client.post(
        url(Device, "add"), {"udid": "", "state": "enrolled", "access_rights": 8191}
    )
    assert response.status_code == 403
    assert Device.objects.count() == before
    assert not Device.objects.filter(udid="").exists()


def test_lost_mode_cannot_be_toggled_by_hand(admin_client, protocol_state):
    device = sample(Device)
    assert device.lost_mode is False
    page = admin_client.get(url(Device, "change", device.pk)).content.decode()
    assert 'name="lost_mode"' not in page
    response = admin_client.post(
        url(Device, "change", device.pk), form_data(device, lost_mode="on")
    )
    assert response.status_code == 403
    device.refresh_from_db()
    assert device.lost_mode is False


# --- what stays editable -----------------------------------------------------------------------


def test_the_allow_list_is_what_stays_editable():
    assert {"auth.User", "auth.Group", "django_celery_beat.PeriodicTask"} <= {
        label(model) for model in EDITABLE_MODELS
    }
    for model in EDITABLE_MODELS:
        assert not isinstance(REGISTRY[model], ReadOnlyAdmin), label(model)


@pytest.mark.parametrize("model", EDITABLE_MODELS, ids=label)
def test_allow_listed_models_can_be_added(admin_client, model):
    assert admin_client.get(url(model, "add")).status_code == 200


def test_the_beat_schedule_is_editable(admin_client):
    # The schedule's admin has an inline of the tasks that use it: an empty one here.
    inline = {"periodictask_set-TOTAL_FORMS": 0, "periodictask_set-INITIAL_FORMS": 0}
    add = {"every": 7, "period": "minutes", **inline}
    assert admin_client.post(url(IntervalSchedule, "add"), add).status_code == 302
    schedule = IntervalSchedule.objects.get(every=7, period="minutes")
    changed = admin_client.post(url(IntervalSchedule, "change", schedule.pk), {**add, "every": 9})
    assert changed.status_code == 302
    schedule.refresh_from_db()
    assert schedule.every == 9
