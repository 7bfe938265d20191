"""Declarative Device Management end to end: a simulated device enrolled in a live portal gets
declarations assigned with the portal's own functions, receives one DeclarativeManagement
command, syncs (tokens, declaration-items, each declaration, its assets' data) and reports
its status; the portal's states then say what the device did. A changed declaration is
refetched alone, a removed one dropped; a configuration told to fail, an activation whose
predicate is false and an asset download refused for a bad signature show as such."""

import json
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from commands.models import QueuedCommand, Status
from declarations.assets import serve_data
from declarations.models import Declaration, DeclarationState, DeviceDeclarations, ServedAsset
from declarations.sets import add_declarations, assign, create_set, remove_declarations
from declarations.states import device_rows
from declarations.store import save_declaration
from devices.models import Device
from simulator import summary_text
from simulator.device import Fleet, SimulatedDevice
from simulator.identity import sign_detached
from simulator.report import Stats
from simulator.scep import self_signed
from simulator.state import load_fleet, save_fleet
from tests.declarative_support import declarative_commands
from tests.simulator_support import run_async

pytestmark = pytest.mark.django_db(transaction=True)

TEST = "com.apple.configuration.management.test"
ACTIVATION = "com.apple.activation.simple"
ECHO = b"echoed from the data asset"
PASSCODE = {
    "Type": "com.apple.configuration.passcode.settings",
    "Identifier": "passcode",
    "Payload": {"MinimumLength": 6},
}
INSTALLED = {
    "Type": TEST,
    "Identifier": "test-installed",
    "Payload": {"Echo": "fine", "EchoDataAssetReference": "echo-data"},
}
FAILING = {
    "Type": TEST,
    "Identifier": "test-failed",
    "Payload": {"Echo": "broken", "ReturnStatus": "Failed", "EchoDataAssetReference": "echo-data"},
}
FOR_IPHONES = {
    "Type": ACTIVATION,
    "Identifier": "activate-iphone",
    "Payload": {
        "StandardConfigurations": ["passcode", "test-installed", "test-failed"],
        "Predicate": '@status(device.model.family) == "iPhone" AND '
        "@status(device.operating-system.family) == 'iOS'",
    },
}
MAC_TEST = {"Type": TEST, "Identifier": "mac-test", "Payload": {"Echo": "mac"}}
FOR_MACS = {
    "Type": ACTIVATION,
    "Identifier": "activate-mac",
    "Payload": {
        "StandardConfigurations": ["mac-test"],
        "Predicate": "@status(device.operating-system.family) == 'macOS'",
    },
}
ORGANIZATION = {
    "Type": "com.apple.management.organization-info",
    "Identifier": "org",
    "Payload": {"Name": "Example Corp"},
}


def enroll_one(portal, tmp_path) -> tuple[str, Device]:
    """One simulated iPhone enrolled (its initial inventory answered), kept in a state file."""
    state = tmp_path / "fleet.json"
    stats = portal.run(devices=1, state=str(state))
    assert not stats.failed, stats.as_dict()
    return str(state), Device.objects.get()


def held(state: str) -> dict:
    """The simulated device's declarative state, as its state file keeps it."""
    [device] = json.loads(Path(state).read_text())["devices"]
    return device["declarative"]


def states(device: Device) -> dict[str, str]:
    return {row.identifier: row.state for row in device_rows(device)}


def reasons(device: Device, identifier: str) -> list[dict]:
    return DeclarationState.objects.get(device=device, identifier=identifier).reasons


def codes(device: Device, identifier: str) -> list[str]:
    return [reason["code"] for reason in reasons(device, identifier)]


def give(device: Device, *declarations: dict, name: str = "iphones"):
    """Store the declarations and assign them as a set, as the UI and API do."""
    stored = [save_declaration(d, by="tests")[0] for d in declarations]
    declaration_set = create_set(name, by="tests")
    add_declarations(declaration_set, stored, by="tests")
    assign(declaration_set, devices=Device.objects.filter(pk=device.pk), by="tests")
    return declaration_set


def test_a_device_syncs_applies_and_reports_its_declarations(portal, tmp_path):
    state, device = enroll_one(portal, tmp_path)
    serve_data("echo-data", ECHO, "text/plain", by="tests")
    for configuration in (PASSCODE, INSTALLED, FAILING, MAC_TEST):
        save_declaration(configuration, by="tests")  # brought in by the activations
    declaration_set = give(device, FOR_IPHONES, FOR_MACS, ORGANIZATION)
    [command] = declarative_commands(device.udid)

    stats = portal.run(devices=1, state=state)

    assert not stats.failed, stats.as_dict()
    row = QueuedCommand.objects.get(device=device, request_type="DeclarativeManagement")
    assert row.status == Status.ACKNOWLEDGED
    declarative = stats.as_dict()["declarative"]
    assert declarative == {
        "syncs": 1,
        "declarations_fetched": {"activation": 2, "asset": 1, "configuration": 4, "management": 1},
        "assets_downloaded": 1,
        "credentials": {},
        "status_reports": 1,
        "failures": {"Error.ConfigurationCannotBeApplied": 1},
    }
    assert "declarative syncs: 1" in summary_text(stats)
    # The portal's view: what the device reported, joined with what it should have.
    assert states(device) == {
        "test-failed": "failed",
        "activate-iphone": "active",
        "echo-data": "active",
        "org": "active",
        "passcode": "active",
        "test-installed": "active",
        "activate-mac": "inactive",
        "mac-test": "inactive",
    }
    [failure] = reasons(device, "test-failed")
    assert failure["code"] == "Error.ConfigurationCannotBeApplied"
    assert failure["description"] == ECHO.decode()  # the text of the data it downloaded
    assert codes(device, "activate-mac") == ["Info.Predicate"]
    assert (
        reasons(device, "activate-mac")[0]["details"]["Predicate"]
        == FOR_MACS["Payload"]["Predicate"]
    )
    assert codes(device, "mac-test") == ["Info.NotReferencedByActivation"]
    assert ServedAsset.objects.get(declaration__identifier="echo-data").downloads == 1
    sync = DeviceDeclarations.objects.get(device=device)
    assert sync.reports == 1 and sync.last_report_full
    assert sync.last_report["StatusItems"]["device"]["model"]["family"] == "iPhone"
    assert sync.last_report["StatusItems"]["device"]["identifier"]["udid"] == device.udid
    capabilities = sync.last_report["StatusItems"]["management"]["client-capabilities"]
    assert TEST in capabilities["supported-payloads"]["declarations"]["configurations"]
    # Both sides hold the same DeclarationsToken: the one the command announced.
    announced = json.loads(command["Data"])["SyncTokens"]["DeclarationsToken"]
    assert held(state)["token"] == sync.token == announced
    assert sorted(held(state)["declarations"]) == sorted(states(device))

    # One declaration changes: a new ServerToken and DeclarationsToken, one more command,
    # and the device fetches that declaration alone.
    old_token = Declaration.objects.get(identifier="passcode").server_token
    changed = {**PASSCODE, "Payload": {"MinimumLength": 8}}
    save_declaration(changed, by="tests")
    passcode = Declaration.objects.get(identifier="passcode")
    assert passcode.server_token != old_token
    commands = declarative_commands(device.udid)
    assert len(commands) == 2
    assert json.loads(commands[1]["Data"])["SyncTokens"]["DeclarationsToken"] != announced

    again = portal.run(devices=1, state=state)

    assert not again.failed, again.as_dict()
    assert again.as_dict()["declarative"]["declarations_fetched"] == {"configuration": 1}
    assert again.assets_downloaded == 0 and again.status_reports == 1
    state_row = DeclarationState.objects.get(device=device, identifier="passcode")
    assert state_row.server_token == passcode.server_token and state_row.active
    assert held(state)["declarations"]["passcode"]["Payload"] == {"MinimumLength": 8}
    sync.refresh_from_db()
    assert held(state)["token"] == sync.token != announced
    # An incremental report: only the declarations, nothing else changed.
    assert sync.reports == 2 and not sync.last_report_full
    assert "FullReport" not in sync.last_report
    assert list(sync.last_report["StatusItems"]) == ["management"]
    assert list(sync.last_report["StatusItems"]["management"]) == ["declarations"]

    # A declaration leaves the set: the device drops it (and the configuration only it
    # brought in), and its next report no longer lists them.
    remove_declarations(declaration_set, [Declaration.objects.get(identifier="activate-mac")])
    assert len(declarative_commands(device.udid)) == 3

    last = portal.run(devices=1, state=state)

    assert not last.failed, last.as_dict()
    assert last.as_dict()["declarative"]["declarations_fetched"] == {}
    assert "activate-mac" not in states(device) and "mac-test" not in states(device)
    assert not DeclarationState.objects.filter(identifier__in=["activate-mac", "mac-test"])
    assert sorted(held(state)["declarations"]) == sorted(states(device))
    sync.refresh_from_db()
    activations = sync.last_report["StatusItems"]["management"]["declarations"]["activations"]
    assert [item["identifier"] for item in activations] == ["activate-iphone"]
    assert QueuedCommand.objects.filter(request_type="DeclarativeManagement").count() == 3
    assert set(
        QueuedCommand.objects.filter(request_type="DeclarativeManagement").values_list(
            "status", flat=True
        )
    ) == {Status.ACKNOWLEDGED}


def test_the_fail_rate_fails_configurations_and_the_run_stays_ok(portal, tmp_path):
    state, device = enroll_one(portal, tmp_path)
    save_declaration(PASSCODE, by="tests")
    give(device, {**FOR_IPHONES, "Payload": {"StandardConfigurations": ["passcode"]}})

    stats = portal.run(devices=1, state=state, ddm_fail_rate=1.0)

    assert not stats.failed, stats.as_dict()
    assert stats.as_dict()["declarative"]["failures"] == {"Error.ConfigurationCannotBeApplied": 1}
    assert states(device) == {"passcode": "failed", "activate-iphone": "active"}
    assert reasons(device, "passcode")[0]["details"]["Error"].endswith("(--ddm-fail-rate)")


def test_an_unparseable_predicate_and_a_missing_configuration_fail_the_activation(portal, tmp_path):
    state, device = enroll_one(portal, tmp_path)
    broken = {
        "Type": ACTIVATION,
        "Identifier": "broken-predicate",
        "Payload": {"StandardConfigurations": [], "Predicate": "@status(device.model.family) =="},
    }
    missing = {
        "Type": ACTIVATION,
        "Identifier": "needs-more",
        "Payload": {"StandardConfigurations": ["org", "not-on-the-portal"]},
    }
    give(device, broken, missing, ORGANIZATION)

    stats = portal.run(devices=1, state=state)

    assert not stats.failed, stats.as_dict()
    assert states(device)["broken-predicate"] == "failed"
    assert codes(device, "broken-predicate") == ["Error.UnableToParsePredicate"]
    assert states(device)["needs-more"] == "failed"
    [reason] = reasons(device, "needs-more")
    assert reason["code"] == "Error.MissingConfigurations"
    # "org" is a management declaration, not a configuration: missing as well.
    assert reason["details"]["ConfigurationIdentifiers"] == ["org", "not-on-the-portal"]


class BadSignature:
    """Every asset download of the device carries another key's Mdm-Signature: what a device
    whose signature is wrong sends (its check-ins stay as they are)."""

    def __init__(self):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not ours")])
        self.signature = sign_detached(b"", self_signed(key, name), key)
        self.tampered = 0

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path.startswith("/mdm/assets/"):
            request.headers["Mdm-Signature"] = self.signature
            self.tampered += 1


def poll_once(portal, state: str, hook) -> Stats:
    """The device of the state file polls once (syncing when told), with `hook` on each of
    its requests."""

    async def run() -> Stats:
        stats = Stats()
        fleet = Fleet(url=portal.url, token=portal.token, stats=stats)
        make = fleet.client

        def client(trust=(), identity=None):
            made = make(trust, identity)
            made.event_hooks = {"request": [hook], "response": []}
            return made

        fleet.client = client
        [device_state] = load_fleet(Path(state))
        try:
            await SimulatedDevice(device_state, fleet).poll()
        finally:
            await fleet.close()
        save_fleet(Path(state), [device_state])
        return stats

    return run_async(run())


def test_an_asset_download_with_a_wrong_signature_is_refused_and_reported(portal, tmp_path):
    state, device = enroll_one(portal, tmp_path)
    serve_data("echo-data", ECHO, "text/plain", by="tests")
    save_declaration(INSTALLED, by="tests")
    give(device, {**FOR_IPHONES, "Payload": {"StandardConfigurations": ["test-installed"]}})
    hook = BadSignature()

    stats = poll_once(portal, state, hook)

    assert hook.tampered == 1
    assert stats.failed  # the portal refused what the device needs: a problem of the run
    assert stats.errors["declarative: asset data HTTP 403"] == 1
    assert stats.status_reports == 1 and stats.assets_downloaded == 0
    assert stats.declarative_failures == {
        "Error.AssetCannotBeDownloaded": 1,
        "Error.MissingAssets": 1,
    }
    assert states(device) == {
        "echo-data": "failed",
        "test-installed": "failed",
        "activate-iphone": "active",
    }
    [refused] = reasons(device, "echo-data")
    assert refused["code"] == "Error.AssetCannotBeDownloaded"
    assert "HTTP 403" in refused["details"]["Error"]
    assert reasons(device, "test-installed")[0]["details"]["AssetIdentifiers"] == ["echo-data"]
    assert ServedAsset.objects.get(declaration__identifier="echo-data").downloads == 0

    # With its own signature the next sync (a new revision of the asset) loads it.
    serve_data("echo-data", ECHO + b"!", "text/plain", by="tests")
    again = portal.run(devices=1, state=state)
    assert not again.failed, again.as_dict()
    assert again.assets_downloaded == 1
    assert states(device)["echo-data"] == states(device)["test-installed"] == "active"


def test_a_data_asset_that_does_not_match_its_hash_cannot_be_verified(portal, tmp_path):
    state, device = enroll_one(portal, tmp_path)
    asset = serve_data("echo-data", ECHO, "text/plain", by="tests")
    save_declaration(INSTALLED, by="tests")
    give(device, {**FOR_IPHONES, "Payload": {"StandardConfigurations": ["test-installed"]}})
    # The stored data changes behind the declaration's back (its Reference keeps the old
    # Size and hash): what a device must refuse to use.
    ServedAsset.objects.filter(declaration=asset).update(content=b"something else")

    stats = portal.run(devices=1, state=state)

    assert stats.errors["declarative: asset data does not match its Reference"] == 1
    assert codes(device, "echo-data") == ["Error.AssetCannotBeVerified"]
    assert states(device)["test-installed"] == "failed"


def test_a_device_that_enrolls_again_is_told_to_sync_from_nothing(portal, tmp_path):
    """A new enrollment (Authenticate) starts without declarations on the device: the portal
    must not take it for holding what it was told in its earlier enrollment."""
    state, device = enroll_one(portal, tmp_path)
    save_declaration(PASSCODE, by="tests")
    give(device, {**FOR_IPHONES, "Payload": {"StandardConfigurations": ["passcode"]}})
    assert not portal.run(devices=1, state=state).failed
    assert states(device) == {"activate-iphone": "active", "passcode": "active"}
    Device.objects.filter(pk=device.pk).update(state=Device.State.CHECKED_OUT)

    again = portal.run(devices=1, state=state)  # a 401, then Authenticate and TokenUpdate

    assert again.reenrolled == 1, again.as_dict()
    assert again.declarative_syncs == 1 and again.status_reports == 1
    assert again.as_dict()["declarative"]["declarations_fetched"] == {
        "activation": 1,
        "configuration": 1,
    }
    assert states(device) == {"activate-iphone": "active", "passcode": "active"}
    sync = DeviceDeclarations.objects.get(device=device)
    assert sync.last_report_full and held(state)["token"] == sync.token
