"""What a simulated device makes of the declarations it holds (simulator/declarative_apply.py),
the status reports it writes of them (declarative_status.py), the DeclarativeManagement
command's answer and the state file keeping it all, without a portal: the rules whose cases an
end-to-end run does not reach (Types the device cannot take, unknown Types, assets of failed
configurations, management properties in predicates, …)."""

import argparse
import json
import plistlib

import pytest

from declarations.schema import STATUS_ITEMS, validate_payload
from simulator import Options, SimulatorError, run
from simulator import declarative_apply as apply
from simulator import declarative_status as status
from simulator.answers import answer
from simulator.cli import add_arguments, options_from
from simulator.declarative_catalog import supported_types
from simulator.state import DeclarativeState, load_fleet, new_device, save_fleet

TEST = "com.apple.configuration.management.test"


def declaration(kind: str, declaration_type: str, payload: dict, token: str = "t1") -> dict:
    return {"kind": kind, "Type": declaration_type, "ServerToken": token, "Payload": payload}


def activation(*configurations: str, predicate: str | None = None) -> dict:
    payload = {"StandardConfigurations": list(configurations)}
    if predicate is not None:
        payload["Predicate"] = predicate
    return declaration("activation", "com.apple.activation.simple", payload)


def configuration(declaration_type: str = TEST, **payload) -> dict:
    return declaration("configuration", declaration_type, payload or {"Echo": "x"})


def asset(declaration_type: str = "com.apple.asset.data") -> dict:
    return declaration("asset", declaration_type, {"Reference": {"DataURL": "https://x/a"}})


def judge(fail_rate: float = 0.0, **state):
    device = new_device(0)  # an iPhone on 17.5.1, not supervised
    for key, value in state.items():
        setattr(device, key, value)
    return apply.Device(device, status.device_facts(device), fail_rate)


def outcome(valid: bool = True, token: str = "t1", **found) -> dict:
    return {"server_token": token, "valid": valid, "reasons": [], **found}


def by_identifier(arrays: dict) -> dict[str, dict]:
    return {item["identifier"]: item for items in arrays.values() for item in items}


def codes(item: dict) -> list[str]:
    return [reason["code"] for reason in item.get("reasons", [])]


def test_types_the_device_cannot_take_or_does_not_know_are_refused():
    held = {
        "on": activation("disk", "future", "math", "passcode"),
        "disk": configuration("com.apple.configuration.diskmanagement.settings"),  # macOS
        "future": configuration("com.example.configuration.future"),
        "math": configuration("com.apple.configuration.math.settings"),  # iOS 18, supervised
        "passcode": configuration("com.apple.configuration.passcode.settings"),
        "odd": declaration("management", "com.example.management.odd", {}),
    }
    items = by_identifier(apply.evaluate_all(held, {}, judge()))
    assert codes(items["disk"]) == ["Error.ConfigurationNotSupported"]
    assert items["disk"]["reasons"][0]["details"] == {"Identifier": "disk", "ServerToken": "t1"}
    assert codes(items["future"]) == ["Error.UnknownDeclarationType"]
    assert codes(items["math"]) == ["Error.ConfigurationNotSupported"]
    assert "18.0" in items["math"]["reasons"][0]["description"]
    assert items["passcode"]["active"] and items["on"]["active"]
    assert codes(items["odd"]) == ["Error.UnknownDeclarationType"]
    # Supervised and on iOS 18, math settings are taken.
    newer = by_identifier(apply.evaluate_all(held, {}, judge(os_version="18.1", supervised=True)))
    assert newer["math"]["active"] and newer["math"]["valid"] == "valid"


def test_the_client_capabilities_list_what_the_device_takes():
    older = supported_types(judge(os_version="16.4").state)
    assert "com.apple.configuration.passcode.settings" in older["configurations"]
    assert "com.apple.asset.data" not in older["assets"]  # iOS 17
    assert "com.apple.configuration.math.settings" not in older["configurations"]
    assert "com.apple.configuration.diskmanagement.settings" not in older["configurations"]
    capabilities = status.client_capabilities(judge().state)
    validate_payload(
        STATUS_ITEMS["management.client-capabilities"],
        {"management.client-capabilities": capabilities},
    )


def test_an_activation_missing_a_configuration_fails_the_ones_it_has():
    held = {"on": activation("there", "gone"), "there": configuration()}
    items = by_identifier(apply.evaluate_all(held, {}, judge()))
    assert codes(items["on"]) == ["Error.MissingConfigurations"]
    assert items["on"]["reasons"][0]["details"]["ConfigurationIdentifiers"] == ["gone"]
    assert codes(items["there"]) == ["Error.ActivationFailed"]
    assert items["there"]["reasons"][0]["details"]["Identifier"] == "on"


def test_predicates_read_status_items_and_management_properties():
    held = {
        "sales": activation("a", predicate="@property(department) == 'Sales'"),
        "ipads": activation("b", predicate="@status(device.model.family) == 'iPad'"),
        "odd": activation("c", predicate="@status(device.model.family) > 2"),
        "props": declaration(
            "management", "com.apple.management.properties", {"department": "Sales"}
        ),
        "a": configuration(),
        "b": configuration(),
        "c": configuration(),
    }
    items = by_identifier(apply.evaluate_all(held, {}, judge()))
    assert items["sales"]["active"] and items["a"]["active"]
    assert not items["ipads"]["active"] and codes(items["ipads"]) == ["Info.Predicate"]
    assert items["ipads"]["valid"] == "valid"
    assert codes(items["b"]) == ["Info.NotReferencedByActivation"]
    assert items["b"]["valid"] == "unknown"
    assert codes(items["odd"]) == ["Error.UnableToEvaluatePredicate"]
    assert items["props"]["active"]
    ipad = by_identifier(apply.evaluate_all(held, {}, judge(model_name="iPad")))
    assert ipad["ipads"]["active"] and ipad["b"]["active"]


def test_assets_follow_the_configurations_that_reference_them():
    held = {
        "on": activation("uses", "fails"),
        "uses": configuration(Echo="a", EchoDataAssetReference="data"),
        "fails": configuration(Echo="b", ReturnStatus="Failed", EchoDataAssetReference="other"),
        "data": asset(),
        "other": asset(),
        "loose": asset(),
    }
    device = judge()
    assert apply.needed_assets(held, device) == ["data", "other"]
    loaded = {"data": outcome(text="from data"), "other": outcome(text="from other")}
    items = by_identifier(apply.evaluate_all(held, loaded, device))
    assert items["data"]["active"] and items["uses"]["active"]
    assert codes(items["fails"]) == ["Error.ConfigurationCannotBeApplied"]
    assert items["fails"]["reasons"][0]["description"] == "from other"  # the asset's text
    assert codes(items["other"]) == ["Error.ConfigurationFailed"]
    assert codes(items["loose"]) == ["Info.NotReferencedByConfiguration"]
    # An asset that did not load (or at another revision) is missing to its configuration.
    failed = {"code": "Error.AssetCannotBeDownloaded", "description": "no"}
    broken = {**loaded, "data": {**outcome(False), "reasons": [failed]}}
    items = by_identifier(apply.evaluate_all(held, broken, device))
    assert codes(items["data"]) == ["Error.AssetCannotBeDownloaded"]
    assert items["data"]["valid"] == "invalid"
    assert codes(items["uses"]) == ["Error.MissingAssets"]
    stale = {**loaded, "data": outcome(token="t0")}
    assert codes(by_identifier(apply.evaluate_all(held, stale, device))["uses"]) == [
        "Error.MissingAssets"
    ]


@pytest.mark.parametrize(("returned", "active"), [("Installed", True), ("Unlocked", True)])
def test_apples_test_configuration_succeeds_unless_told_to_fail(returned, active):
    held = {"on": activation("test"), "test": configuration(Echo="x", ReturnStatus=returned)}
    item = by_identifier(apply.evaluate_all(held, {}, judge()))["test"]
    assert item["active"] is active and item["valid"] == "valid" and "reasons" not in item


def test_the_fail_rate_picks_the_same_configurations_every_time():
    held = {"on": activation(*[f"c{i}" for i in range(40)])}
    held |= {f"c{i}": configuration("com.apple.configuration.passcode.settings") for i in range(40)}
    device = judge(0.5)
    first = by_identifier(apply.evaluate_all(held, {}, device))
    again = by_identifier(apply.evaluate_all(held, {}, device))
    failed = {i for i, item in first.items() if not item["active"]}
    assert failed == {i for i, item in again.items() if not item["active"]}
    assert 5 < len(failed) < 35
    assert all(codes(first[i]) == ["Error.ConfigurationCannotBeApplied"] for i in failed)
    device.fail_rate = 0.0
    none = by_identifier(apply.evaluate_all(held, {}, device))
    assert all(item["active"] for item in none.values())


def test_a_full_report_then_only_what_changed():
    device = judge().state
    memory = DeclarativeState()
    arrays = {"activations": [], "assets": [], "configurations": [], "management": []}
    items = status.current_items(device, arrays)
    document, full = status.report(memory, items)
    assert full and document["FullReport"] is True and document["Errors"] == []
    tree = document["StatusItems"]
    assert tree["device"]["operating-system"] == {
        "build-version": device.build_version,
        "family": "iOS",
        "marketing-name": "iOS 17",
        "version": device.os_version,
    }
    assert tree["management"]["declarations"] == arrays
    for name, definition in STATUS_ITEMS.items():  # every item as Apple's schema has it
        if name in items:
            validate_payload(definition, {name: items[name]})
    status.reported(memory, items)
    assert status.report(memory, items) is None  # nothing changed: nothing to say
    device.os_version = "17.6"
    document, full = status.report(memory, status.current_items(device, arrays))
    assert not full and "FullReport" not in document
    assert document["StatusItems"] == {
        "device": {"operating-system": {"version": "17.6"}},
        "management": {"declarations": arrays},  # always whole
    }


def test_the_command_asks_for_a_sync_and_bad_data_is_an_error():
    device = new_device(0)
    data = json.dumps({"SyncTokens": {"DeclarationsToken": "abc", "Timestamp": "x"}}).encode()
    command = {"RequestType": "DeclarativeManagement", "Data": data}
    assert answer(device, command).status == "Acknowledged" and device.declarative.sync_due
    other = new_device(1)
    for bad in (b"not json", b"{}", json.dumps({"SyncTokens": {}}).encode()):
        refused = answer(other, {"RequestType": "DeclarativeManagement", "Data": bad})
        assert refused.status == "Error" and not other.declarative.sync_due
    assert answer(other, {"RequestType": "DeclarativeManagement"}).status == "Acknowledged"
    plistlib.dumps(refused.result)  # an answer a device can send


def test_the_state_file_keeps_the_declarative_state(tmp_path):
    device = new_device(0)
    device.enrolled = True
    device.declarative.token = "abc"
    device.declarative.sync_due = True  # acknowledged, not synced yet: the next run syncs
    device.declarative.declarations = {"org": declaration("management", "x", {"Name": "n"})}
    device.declarative.assets = {"data": outcome(text="t")}
    device.declarative.reported = {"device.model.family": "iPhone"}
    device.declarative.reports = 2
    path = tmp_path / "fleet.json"
    save_fleet(path, [device])
    [loaded] = load_fleet(path)
    assert loaded.declarative == device.declarative
    # A state file from before declarative management loads with an empty one.
    data = json.loads(path.read_text())
    del data["devices"][0]["declarative"]
    path.write_text(json.dumps(data))
    assert load_fleet(path)[0].declarative == DeclarativeState()


def test_the_fail_rate_is_an_option_between_0_and_1(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    values = vars(parser.parse_args(["--url", "http://x", "--ddm-fail-rate", "0.25"]))
    assert options_from(values).ddm_fail_rate == 0.25
    assert options_from(vars(parser.parse_args(["--url", "http://x"]))).ddm_fail_rate == 0.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--url", "http://x", "--ddm-fail-rate", "2"])
    assert "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SimulatorError, match="--ddm-fail-rate must be between 0 and 1"):
        run(Options(url="http://127.0.0.1:9", enrollment="t", ddm_fail_rate=1.5))
