"""`mdm_dep` subcommands for the device sync and DEP profiles: sync, profile define|assign|list,
devices, account, disown. Each is a pair (its arguments, its run) listed in SUBCOMMANDS, which
mdm_dep's table takes whole; they call the same functions as the UI and the API."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q

from .dep_models import DepDevice, DepProfile, DepServer
from .dep_profiles import assign_profile as assign
from .dep_profiles import save_profile, set_auto_assign
from .dep_sync import device_details, disown_devices, refresh_account, sync_all, sync_server
from .dep_tokens import find_server
from .models import Enrollment

ACTOR = "mdm_dep"


def _token_argument(parser: CommandParser, what: str = "the DEP server") -> None:
    parser.add_argument(
        "--token",
        metavar="NAME",
        help=f"{what}, by its name in `mdm_dep tokens`; optional when there is only one",
    )


def _table(command: BaseCommand, rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        command.stdout.write("  ".join([*cells, row[-1]]).rstrip())


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


# --- sync -----------------------------------------------------------------------------------


def _sync_arguments(parser: CommandParser) -> None:
    _token_argument(parser, "only this DEP server (default: every one)")


def _sync(command: BaseCommand, options: dict) -> None:
    if options["token"]:
        outcomes = [sync_server(find_server(options["token"]), actor=ACTOR)]
    else:
        outcomes = sync_all()
    if not outcomes:
        command.stdout.write("no DEP server yet: mdm_dep token-certificate --name NAME")
    for outcome in outcomes:
        state = "skipped" if outcome.skipped else "ok" if outcome.ok else "FAILED"
        command.stdout.write(f"{outcome.server}: {state}: {outcome.message}")
    failed = [o.server for o in outcomes if not o.ok and not o.skipped]
    if failed:
        raise CommandError(f"the sync failed for {', '.join(failed)}")


# --- profile define | assign | list ----------------------------------------------------------


def _profile_arguments(parser: CommandParser) -> None:
    actions = parser.add_subparsers(dest="profile_action", required=True, metavar="ACTION")
    define = actions.add_parser(
        "define", help="define a DEP profile with Apple (again under the same name: an edit)"
    )
    _token_argument(define)
    define.add_argument("--name", required=True, help="the profile's name (profile_name)")
    define.add_argument(
        "--enrollment",
        required=True,
        metavar="TOKEN_OR_ID",
        help="the enrollment devices get from Setup Assistant (its token or id)",
    )
    flag = argparse.BooleanOptionalAction
    define.add_argument("--supervised", action=flag, default=None, help="default: supervised")
    define.add_argument(
        "--await-configured",
        action=flag,
        default=None,
        help="Setup Assistant waits for the portal's DeviceConfigured (default: no)",
    )
    define.add_argument(
        "--removable", dest="removable", action="store_true", default=None, help="the default"
    )
    define.add_argument(
        "--not-removable",
        dest="removable",
        action="store_false",
        help="the user cannot remove the MDM profile (default: removable, Apple's default)",
    )
    define.add_argument("--department", help="shown in Setup Assistant")
    define.add_argument("--support-phone", help="shown in Setup Assistant")
    define.add_argument("--support-email", help="shown in Setup Assistant")
    define.add_argument(
        "--skip",
        nargs="+",
        metavar="ITEM",
        help="Setup Assistant panes to skip, Apple's names (AppleID Siri Location ...)",
    )
    define.add_argument(
        "--auto-assign", action="store_true", help="devices added to the server get it"
    )
    give = actions.add_parser("assign", help="assign a DEP profile to devices by serial")
    give.add_argument("name", help="the profile's name")
    give.add_argument("serials", nargs="*", metavar="SERIAL")
    give.add_argument(
        "--unassigned",
        action="store_true",
        help="every device of the server that has no profile of the portal's yet",
    )
    _token_argument(give)
    listing = actions.add_parser("list", help="the DEP profiles, each with its devices")
    _token_argument(listing, "only this DEP server's")


def _profile(command: BaseCommand, options: dict) -> None:
    {"define": _define, "assign": _assign, "list": _list}[options["profile_action"]](
        command, options
    )


OPTION_SETTINGS = {  # option -> the profile key it sets
    "supervised": "is_supervised",
    "await_configured": "await_device_configured",
    "removable": "is_mdm_removable",
    "department": "department",
    "support_phone": "support_phone_number",
    "support_email": "support_email_address",
    "skip": "skip_setup_items",
}


def _enrollment(reference: str) -> Enrollment:
    enrollment = Enrollment.objects.filter(token=reference).first()
    if enrollment is None and reference.isdigit():
        enrollment = Enrollment.objects.filter(pk=int(reference)).first()
    if enrollment is None:
        raise CommandError(f"no enrollment has the token (or id) {reference!r}")
    return enrollment


def _define(command: BaseCommand, options: dict) -> None:
    server = find_server(options["token"])
    profile = DepProfile.objects.filter(server=server, name=options["name"]).first()
    # An edit keeps what is not given again.
    settings: dict[str, Any] = dict(profile.settings) if profile else {}
    for option, key in OPTION_SETTINGS.items():
        if options[option] is not None:
            settings[key] = options[option]
    saved = save_profile(
        server,
        name=options["name"],
        enrollment=_enrollment(options["enrollment"]),
        settings=settings,
        actor=ACTOR,
        profile=profile,
    )
    what = "defined again (a new profile at Apple)" if profile else "defined"
    command.stdout.write(f"profile {saved.name!r} {what}: profile_uuid {saved.profile_uuid}")
    if options["auto_assign"]:
        set_auto_assign(server, saved, actor=ACTOR)
        command.stdout.write(f"devices added to {server.name!r} from now on get it")


def _assign(command: BaseCommand, options: dict) -> None:
    server = find_server(options["token"])
    profile = DepProfile.objects.filter(server=server, name=options["name"]).first()
    if profile is None:
        raise CommandError(f"DEP server {server.name!r} has no profile {options['name']!r}")
    serials = list(options["serials"])
    if options["unassigned"]:
        unassigned = DepDevice.objects.filter(server=server, removed=False, assigned_profile=None)
        serials += unassigned.order_by("serial_number").values_list("serial_number", flat=True)
    if not serials:
        raise CommandError("name the devices (SERIAL ...) or give --unassigned")
    results = assign(profile, serials, actor=ACTOR)
    _table(command, [("SERIAL", "RESULT"), *sorted(results.items())])
    missed = [serial for serial, result in results.items() if result != "SUCCESS"]
    if missed:
        raise CommandError(f"{len(missed)} of {len(results)} device(s) did not get the profile")


def _list(command: BaseCommand, options: dict) -> None:
    profiles = DepProfile.objects.select_related("server", "enrollment").annotate(
        assigned=Count("devices", filter=Q(devices__removed=False))
    )
    if options["token"]:
        profiles = profiles.filter(server=find_server(options["token"]))
    rows = [("SERVER", "NAME", "PROFILE UUID", "ENROLLMENT", "DEFINED", "DEVICES", "AUTO")]
    auto = set(DepServer.objects.values_list("auto_assign_profile", flat=True))
    for p in profiles.order_by("server__name", "name"):
        rows.append(
            (
                p.server.name,
                p.name,
                p.profile_uuid or "-",
                p.enrollment.name,
                _when(p.defined_at),
                str(p.assigned),
                "auto-assign" if p.pk in auto else "",
            )
        )
    if len(rows) == 1:
        command.stdout.write("no DEP profile yet: mdm_dep profile define --name N --enrollment E")
        return
    _table(command, rows)


# --- devices, account, disown ----------------------------------------------------------------


def _devices_arguments(parser: CommandParser) -> None:
    _token_argument(parser, "only this DEP server's devices")
    parser.add_argument("--json", action="store_true", help="JSON, one object per device")
    parser.add_argument("--removed", action="store_true", help="also those no longer assigned")


DEVICE_COLUMNS = ("serial_number", "model", "os", "profile_status", "assign_result", "op_type")


def _devices(command: BaseCommand, options: dict) -> None:
    devices = DepDevice.objects.select_related("server", "assigned_profile")
    if options["token"]:
        devices = devices.filter(server=find_server(options["token"]))
    if not options["removed"]:
        devices = devices.filter(removed=False)
    devices = devices.order_by("server__name", "serial_number")
    if options["json"]:
        rows = [_device_json(device) for device in devices]
        command.stdout.write(json.dumps(rows, indent=2))
        return
    rows = [("SERVER", "SERIAL", "MODEL", "OS", "APPLE", "PROFILE", "RESULT", "LAST OP")]
    for d in devices:
        profile = d.assigned_profile.name if d.assigned_profile else "-"
        op = f"{d.op_type}{' (removed)' if d.removed else ''}" or "-"
        status = d.profile_status or "-"
        result = d.assign_result or "-"
        rows.append((d.server.name, d.serial_number, d.model, d.os, status, profile, result, op))
    if len(rows) == 1:
        command.stdout.write("no DEP device yet: mdm_dep sync")
        return
    _table(command, rows)


def _device_json(device: DepDevice) -> dict:
    data = {name: getattr(device, name) for name in DEVICE_COLUMNS}
    data.update(
        server=device.server.name,
        description=device.description,
        color=device.color,
        asset_tag=device.asset_tag,
        device_family=device.device_family,
        profile_uuid=device.profile_uuid,
        assigned_profile=device.assigned_profile.name if device.assigned_profile else None,
        assign_result_at=device.assign_result_at,
        removed=device.removed,
        device_assigned_date=device.device_assigned_date,
        op_date=device.op_date,
    )
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in data.items()}


def _details_arguments(parser: CommandParser) -> None:
    parser.add_argument("serials", nargs="+", metavar="SERIAL")
    _token_argument(parser)


def _details(command: BaseCommand, options: dict) -> None:
    details = device_details(find_server(options["token"]), options["serials"], actor=ACTOR)
    command.stdout.write(json.dumps(details, indent=2, sort_keys=True))


def _account_arguments(parser: CommandParser) -> None:
    _token_argument(parser)


def _account(command: BaseCommand, options: dict) -> None:
    account = refresh_account(find_server(options["token"]), actor=ACTOR)
    rows = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in account.items()]
    _table(command, sorted(rows) or [("(empty)", "")])


def _disown_arguments(parser: CommandParser) -> None:
    parser.add_argument("serials", nargs="+", metavar="SERIAL")
    parser.add_argument(
        "--yes", action="store_true", help="yes: they leave ABM for good (it cannot be undone)"
    )
    _token_argument(parser)


def _disown(command: BaseCommand, options: dict) -> None:
    if not options["yes"]:
        raise CommandError(
            "disowning takes the devices out of Apple Business Manager for good (only the "
            "reseller or Apple can bring them back): add --yes to do it"
        )
    results = disown_devices(find_server(options["token"]), options["serials"], actor=ACTOR)
    _table(command, [("SERIAL", "RESULT"), *sorted(results.items())])
    missed = [serial for serial, result in results.items() if result != "SUCCESS"]
    if missed:
        raise CommandError(f"{len(missed)} of {len(results)} device(s) were not disowned")


# name, help, arguments, run: the entries of mdm_dep's SUBCOMMANDS table.
SUBCOMMANDS: list[tuple[str, str, Callable[[CommandParser], None], Callable]] = [
    ("sync", "sync the devices of every DEP server (or one) now", _sync_arguments, _sync),
    ("profile", "DEP profiles: define, assign, list", _profile_arguments, _profile),
    ("devices", "the devices Apple lists for the DEP servers", _devices_arguments, _devices),
    ("details", "Apple's details of devices now (POST /devices)", _details_arguments, _details),
    ("account", "Apple's account details of a DEP server", _account_arguments, _account),
    ("disown", "give devices up in ABM for good (--yes)", _disown_arguments, _disown),
]
