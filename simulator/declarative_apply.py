"""What a simulated device makes of the declarations it holds: which are active, which valid,
and why not, as the status item management.declarations reports them.

- An activation (com.apple.activation.simple) is active when its Predicate is absent or true
  (simulator/predicates.py, over the device's status items and its management properties)
  and every configuration in its StandardConfigurations is held; an unparseable predicate is
  Error.UnableToParsePredicate, one that cannot be evaluated Error.UnableToEvaluatePredicate, a
  false one Info.Predicate, a missing configuration Error.MissingConfigurations.
- A configuration is active when an active activation references it; otherwise
  Info.NotReferencedByActivation (or Error.ActivationFailed when the activations naming it
  failed). A Type the device cannot take is Error.ConfigurationNotSupported, one it does not
  know Error.UnknownDeclarationType; assets it references (…AssetReference keys) that are
  missing or did not load are Error.MissingAssets. Apple's test configuration
  (com.apple.configuration.management.test) fails when its ReturnStatus says Failed, with its
  Echo (or the text of its EchoDataAssetReference) as the reason; the fleet's fail rate
  (--ddm-fail-rate) fails a share of the others, the same ones at every sync.
- An asset is active when an active configuration references it and its data loaded
  (simulator/declarative_assets.py says how that went); referenced by none:
  Info.NotReferencedByConfiguration; only by configurations that failed:
  Error.ConfigurationFailed.
- Management declarations are active.

Plain functions over plain data: `needed_assets` says which assets to load before
`evaluate` reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import declarative_catalog as catalog
from .predicates import PredicateEvaluationError, PredicateSyntaxError, evaluate
from .state import DeviceState

ACTIVATION = "com.apple.activation.simple"
TEST_CONFIGURATION = "com.apple.configuration.management.test"
PROPERTIES = "com.apple.management.properties"


@dataclass
class Status:
    active: bool
    valid: str  # valid, invalid, unknown
    reasons: list[dict] = field(default_factory=list)

    def item(self, identifier: str, token: str) -> dict:
        found = {
            "identifier": identifier,
            "server-token": token,
            "active": self.active,
            "valid": self.valid,
        }
        if self.reasons:
            found["reasons"] = self.reasons
        return found

    @property
    def failed(self) -> bool:
        return self.valid == "invalid" or any(r["code"].startswith("Error.") for r in self.reasons)


@dataclass
class Device:
    """The device as its declarations see it."""

    state: DeviceState
    facts: dict[str, Any]  # status items by dotted name (declarative_status.device_facts)
    fail_rate: float = 0.0


def asset_references(payload: Any) -> list[str]:
    """The asset identifiers a payload names in its …AssetReference(s) keys, in order."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            if "AssetReference" in key:
                values = value if isinstance(value, list) else [value]
                found += [v for v in values if isinstance(v, str) and v not in found]
            else:
                found += [v for v in asset_references(value) if v not in found]
    elif isinstance(payload, list):
        for item in payload:
            found += [v for v in asset_references(item) if v not in found]
    return found


def management_properties(held: dict[str, dict]) -> dict[str, Any]:
    """What @property(…) reads: the keys of every com.apple.management.properties held."""
    merged: dict[str, Any] = {}
    for identifier in sorted(held):
        if held[identifier]["Type"] == PROPERTIES:
            merged.update(held[identifier].get("Payload") or {})
    return merged


def _of_kind(held: dict[str, dict], kind: str) -> dict[str, dict]:
    return {i: d for i, d in sorted(held.items()) if d["kind"] == kind}


def _type_problem(declaration: dict, identifier: str, device: Device) -> Status | None:
    """Error.UnknownDeclarationType or Error.ConfigurationNotSupported, or None."""
    declaration_type = declaration["Type"]
    try:
        why = catalog.unsupported(declaration_type, device.state)
    except KeyError:
        return Status(False, "invalid", [catalog.unknown_type(declaration_type)])
    if why is None:
        return None
    token = declaration["ServerToken"]
    return Status(False, "invalid", [catalog.not_supported(identifier, token, why)])


def activation_status(identifier: str, declaration: dict, held: dict, device: Device) -> Status:
    problem = _type_problem(declaration, identifier, device)
    if problem is not None:
        return problem
    token, payload = declaration["ServerToken"], declaration.get("Payload") or {}
    predicate = payload.get("Predicate")
    if predicate is not None:
        try:
            holds = evaluate(predicate, device.facts, management_properties(held))
        except PredicateSyntaxError as exc:
            code = "Error.UnableToParsePredicate"
            return Status(
                False, "invalid", [catalog.predicate_error(code, identifier, token, predicate, exc)]
            )
        except PredicateEvaluationError as exc:
            code = "Error.UnableToEvaluatePredicate"
            return Status(
                False, "invalid", [catalog.predicate_error(code, identifier, token, predicate, exc)]
            )
        if not holds:
            return Status(False, "valid", [catalog.predicate_false(identifier, token, predicate)])
    listed = [c for c in payload.get("StandardConfigurations") or [] if isinstance(c, str)]
    missing = [c for c in listed if held.get(c, {}).get("kind") != "configuration"]
    if missing:
        return Status(
            False, "invalid", [catalog.missing_configurations(identifier, token, missing)]
        )
    return Status(True, "valid")


@dataclass
class Plan:
    """The activations' outcome, and the configurations they bring in (by the activations
    naming them)."""

    activations: dict[str, Status]
    configurations: dict[str, list[str]]  # configuration -> active activations naming it
    failed_by: dict[str, list[str]]  # configuration -> failed activations naming it


def plan(held: dict[str, dict], device: Device) -> Plan:
    activations = {
        identifier: activation_status(identifier, declaration, held, device)
        for identifier, declaration in _of_kind(held, "activation").items()
    }
    wanted: dict[str, list[str]] = {}
    failed_by: dict[str, list[str]] = {}
    for identifier, status in activations.items():
        payload = held[identifier].get("Payload") or {}
        for configuration in payload.get("StandardConfigurations") or []:
            if status.active:
                wanted.setdefault(configuration, []).append(identifier)
            elif status.failed:
                failed_by.setdefault(configuration, []).append(identifier)
    return Plan(activations, wanted, failed_by)


def needed_assets(held: dict[str, dict], device: Device) -> list[str]:
    """The held assets the configurations being activated reference: those to load."""
    needed: list[str] = []
    for identifier in plan(held, device).configurations:
        declaration = held.get(identifier)
        if declaration is None or declaration["kind"] != "configuration":
            continue
        if _type_problem(declaration, identifier, device) is not None:
            continue
        for asset in asset_references(declaration.get("Payload") or {}):
            if held.get(asset, {}).get("kind") == "asset" and asset not in needed:
                needed.append(asset)
    return needed


def simulated_failure(device: Device, identifier: str, token: str) -> bool:
    """Whether the fleet's fail rate picks this configuration (the same at every sync)."""
    if device.fail_rate <= 0:
        return False
    digest = hashlib.sha256(f"{device.state.udid}:{identifier}:{token}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < device.fail_rate


def _asset_ok(outcome: dict | None, token: str) -> bool:
    return outcome is not None and outcome.get("server_token") == token and outcome["valid"]


def configuration_status(
    identifier: str, declaration: dict, held: dict, assets: dict, device: Device, chosen: Plan
) -> Status:
    problem = _type_problem(declaration, identifier, device)
    if problem is not None:
        return problem
    token, payload = declaration["ServerToken"], declaration.get("Payload") or {}
    if identifier not in chosen.configurations:
        failed = chosen.failed_by.get(identifier)
        if failed:
            activation = held[failed[0]]["ServerToken"]
            return Status(False, "invalid", [catalog.activation_failed(failed[0], activation)])
        return Status(False, "unknown", [catalog.not_referenced_by_activation(identifier, token)])
    missing = [
        asset
        for asset in asset_references(payload)
        if held.get(asset, {}).get("kind") != "asset"
        or not _asset_ok(assets.get(asset), held[asset]["ServerToken"])
    ]
    if missing:
        return Status(False, "invalid", [catalog.missing_assets(identifier, token, missing)])
    if declaration["Type"] == TEST_CONFIGURATION:
        return _test_configuration(identifier, token, payload, assets)
    if simulated_failure(device, identifier, token):
        why = "simulated failure (--ddm-fail-rate)"
        text = f"Configuration “{identifier}:{token}” cannot be applied."
        return Status(
            False, "invalid", [catalog.error("Error.ConfigurationCannotBeApplied", text, why)]
        )
    return Status(True, "valid")


def _test_configuration(identifier: str, token: str, payload: dict, assets: dict) -> Status:
    """Apple's test configuration: ReturnStatus Installed (the default) or Unlocked is
    success; Failed fails, echoing Echo (or its data asset's text) in the reason."""
    echo = str(payload.get("Echo", ""))
    reference = payload.get("EchoDataAssetReference")
    if isinstance(reference, str) and assets.get(reference, {}).get("text") is not None:
        echo = assets[reference]["text"]
    if payload.get("ReturnStatus", "Installed") == "Failed":
        return Status(
            False, "invalid", [catalog.error("Error.ConfigurationCannotBeApplied", echo, echo)]
        )
    return Status(True, "valid")


def asset_status(
    identifier: str,
    declaration: dict,
    held: dict,
    assets: dict,
    configurations: dict[str, Status],
    chosen: Plan,
) -> Status:
    token = declaration["ServerToken"]
    outcome = assets.get(identifier)
    if outcome is not None and outcome.get("server_token") == token and not outcome["valid"]:
        return Status(False, "invalid", list(outcome["reasons"]))
    users = [
        c
        for c in configurations
        if c in chosen.configurations
        and identifier in asset_references(held[c].get("Payload") or {})
    ]
    if not users:
        return Status(
            False, "unknown", [catalog.not_referenced_by_configuration(identifier, token)]
        )
    if not any(configurations[c].active for c in users):
        first = users[0]
        return Status(
            False, "valid", [catalog.configuration_failed(first, held[first]["ServerToken"])]
        )
    if not _asset_ok(outcome, token):
        return Status(False, "unknown")
    return Status(True, "valid")


def evaluate_all(held: dict[str, dict], assets: dict[str, dict], device: Device) -> dict:
    """Every held declaration's status, as the four arrays of management.declarations."""
    chosen = plan(held, device)
    statuses: dict[str, Status] = dict(chosen.activations)
    configurations = {
        identifier: configuration_status(identifier, declaration, held, assets, device, chosen)
        for identifier, declaration in _of_kind(held, "configuration").items()
    }
    statuses.update(configurations)
    for identifier, declaration in _of_kind(held, "asset").items():
        problem = _type_problem(declaration, identifier, device)
        statuses[identifier] = problem or asset_status(
            identifier, declaration, held, assets, configurations, chosen
        )
    for identifier, declaration in _of_kind(held, "management").items():
        statuses[identifier] = _type_problem(declaration, identifier, device) or Status(
            True, "valid"
        )
    arrays: dict[str, list[dict]] = {catalog.STATUS_ARRAYS[k]: [] for k in catalog.KINDS}
    for identifier in sorted(statuses):
        declaration = held[identifier]
        item = statuses[identifier].item(identifier, declaration["ServerToken"])
        arrays[catalog.STATUS_ARRAYS[declaration["kind"]]].append(item)
    return arrays


def failed_codes(arrays: dict[str, list[dict]]) -> Iterable[tuple[str, str, str]]:
    """(identifier, server token, Error code) of every failing reason in the arrays."""
    for items in arrays.values():
        for item in items:
            for found in item.get("reasons", []):
                if found["code"].startswith("Error."):
                    yield item["identifier"], item["server-token"], found["code"]
