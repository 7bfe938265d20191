"""`mdm_declaration`: Declarative Device Management from the shell.

Declarations (`add` from JSON files, `add-data` and `add-credential` for assets whose data the
portal serves, `list`, `show`, `delete`), sets (`set create|delete|list|add|remove`), their
assignment to devices and groups (`assign`, `unassign`) and where each declaration stands on
each device (`status`). Each subcommand is a pair of small functions (its arguments, its run)
and one line of SUBCOMMANDS, which the management command takes whole. They call what the UI
and the API call (store, sets, assets, states): a refusal is the same DeclarationError, shown
as the command's error, and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from devices.groups import GroupError, find_devices
from devices.models import Device, DeviceGroup

from . import sets, states, store, sync
from .assets import DATA_TYPE, MAX_DATA_BYTES, UPLOADED_CREDENTIALS, serve_credential, serve_data
from .display import as_shown
from .manifest import references
from .models import Declaration, DeclarationSet, ServedAsset
from .schema import KINDS, REASONS, DeclarationError

ACTOR = "mdm_declaration"
# Refusals a subcommand may raise, shown as the command's error.
ERRORS: tuple[type[Exception], ...] = (DeclarationError, GroupError)
MAX_FILE_BYTES = 10 * 1024 * 1024
DATA_TYPES = (DATA_TYPE, *UPLOADED_CREDENTIALS, "com.apple.asset.credential.certificate")
TOKEN_SHOWN = 12  # characters of a ServerToken in tables


def _table(command: BaseCommand, rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        command.stdout.write("  ".join([*cells, row[-1]]).rstrip())


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "never"


def _read(options: dict, path: str, limit: int, what: str) -> bytes:
    """The file's bytes (`-`: stdin), at most `limit`: a larger file is refused unread."""
    if path == "-":
        stream = options.get("stdin") or sys.stdin
        data = getattr(stream, "buffer", stream).read(limit + 1)
        data = data.encode() if isinstance(data, str) else data
    else:
        try:
            with Path(path).open("rb") as file:
                data = file.read(limit + 1)
        except OSError as exc:
            raise CommandError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise CommandError(f"the {what} {path} is over {limit} bytes")
    return data


def _declaration(identifier: str) -> Declaration:
    found = Declaration.objects.filter(identifier=identifier).first()
    if found is None:
        raise CommandError(f"no declaration has the Identifier {identifier!r}")
    return found


def _declarations(identifiers: list[str]) -> list[Declaration]:
    found = {d.identifier: d for d in Declaration.objects.filter(identifier__in=identifiers)}
    unknown = [identifier for identifier in identifiers if identifier not in found]
    if unknown:
        raise CommandError(f"no declaration has the Identifier {', '.join(unknown)}")
    return [found[identifier] for identifier in dict.fromkeys(identifiers)]


def _set(name: str) -> DeclarationSet:
    found = DeclarationSet.objects.filter(name=name.strip()).first()
    if found is None:
        raise CommandError(f"no declaration set named {name!r} (see mdm_declaration set list)")
    return found


def _queued(count: int) -> str:
    return f"DeclarativeManagement queued for {count} device(s)"


# --- add ------------------------------------------------------------------------------------


def _add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE.json",
        help="one declaration (Type, Identifier, Payload) or a JSON array of them; - reads stdin",
    )
    parser.add_argument("--set", metavar="NAME", help="also put them in this set (made if new)")
    parser.add_argument("--description", help="the admin's note on each (never sent to devices)")


def parse_declarations(data: bytes, name: str) -> list[dict]:
    """The declaration objects of a file: one, or an array of them, each Identifier once."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CommandError(f"{name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{name} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise CommandError(f"{name} holds an empty array: no declaration to add")
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise CommandError(
                f"{name}: item {number} is not a declaration (a JSON object with Type, "
                "Identifier and Payload)"
            )
    identifiers = [str(item.get("Identifier")) for item in items]
    repeated = [i for i in dict.fromkeys(identifiers) if identifiers.count(i) > 1]
    if repeated:
        raise CommandError(f"{name}: the Identifier {repeated[0]} appears more than once")
    return items


def _add(command: BaseCommand, options: dict) -> None:
    name = "stdin" if options["file"] == "-" else options["file"]
    items = parse_declarations(_read(options, options["file"], MAX_FILE_BYTES, "file"), name)
    with transaction.atomic():  # all of them, or none
        saved = []
        for number, item in enumerate(items, 1):
            try:
                saved.append(
                    store.store_declaration(
                        item, by=ACTOR, description=options["description"], tell_devices=False
                    )
                )
            except DeclarationError as exc:
                which = f"declaration {number} ({item.get('Identifier')!r})"
                raise CommandError(f"{name}: {which}: {exc}; nothing was added") from None
        queued = 0
        if options["set"]:
            set_name = sets.clean_set_name(options["set"])
            declaration_set = DeclarationSet.objects.filter(name=set_name).first()
            new_set = declaration_set is None
            declaration_set = declaration_set or sets.create_set(set_name, by=ACTOR)
            queued += sets.add_declarations(
                declaration_set, [r.declaration for r in saved], by=ACTOR
            )
        # Once for the whole file: a device the set did not just tell gets one command at most.
        queued += sync.resync(frozenset().union(*(r.devices for r in saved)), by=ACTOR)
    rows = [("IDENTIFIER", "KIND", "RESULT", "SERVERTOKEN")]
    for result in saved:
        what = "created" if result.created else "updated" if result.changed else "unchanged"
        d = result.declaration
        rows.append((d.identifier, d.kind, what, d.server_token))
    _table(command, rows)
    if options["set"]:
        command.stdout.write(f"in set {set_name!r}" + (" (created)" if new_set else ""))
    command.stdout.write(f"{len(saved)} declaration(s) stored; {_queued(queued)}")


# --- add-data, add-credential -------------------------------------------------------------------


def _add_data_arguments(parser: CommandParser) -> None:
    parser.add_argument("identifier", metavar="IDENTIFIER")
    parser.add_argument("file", metavar="FILE", help="the data the portal serves; - reads stdin")
    parser.add_argument(
        "--content-type",
        required=True,
        metavar="TYPE",
        help="its media type (application/json for a user name and password or an identity, "
        "application/pem or application/pkcs1 for a certificate)",
    )
    parser.add_argument("--type", default=DATA_TYPE, choices=DATA_TYPES, help="the asset's Type")
    parser.add_argument("--description", help="the admin's note (never sent to devices)")


def _served_line(declaration: Declaration, existed: bool) -> str:
    served = declaration.served
    what = "updated" if existed else "created"
    if served.source == ServedAsset.Source.DATA:
        shown = f"{served.size} bytes, SHA-256 {served.sha256}"  # never the content
    else:
        shown = f"{served.source} credential, made per device: {json.dumps(served.options)}"
    return f"{what} {declaration.identifier}: {declaration.type}, {shown}; ServerToken " + (
        declaration.server_token
    )


def _add_data(command: BaseCommand, options: dict) -> None:
    content = _read(options, options["file"], MAX_DATA_BYTES, "data file")
    existed = Declaration.objects.filter(identifier=options["identifier"]).exists()
    declaration = serve_data(
        options["identifier"],
        content,
        options["content_type"],
        declaration_type=options["type"],
        by=ACTOR,
        description=options["description"],
    )
    command.stdout.write(_served_line(declaration, existed))


# option -> the credential document's key, per source.
CREDENTIAL_OPTIONS = {
    "acme": {
        "key_type": "KeyType",
        "key_size": "KeySize",
        "hardware_bound": "HardwareBound",
        "attest": "Attest",
        "key_usage": "UsageFlags",
        "extended_key_usage": "ExtendedKeyUsage",
    },
    "scep": {
        "key_type": "Key Type",
        "key_size": "Keysize",
        "key_usage": "Key Usage",
        "name": "Name",
        "retries": "Retries",
        "retry_delay": "RetryDelay",
    },
}


def _add_credential_arguments(parser: CommandParser) -> None:
    parser.add_argument("identifier", metavar="IDENTIFIER")
    parser.add_argument("source", choices=sorted(CREDENTIAL_OPTIONS), help="what issues it")
    parser.add_argument("--key-type", help="acme: RSA or ECSECPrimeRandom (default); scep: RSA")
    parser.add_argument("--key-size", type=int, metavar="N", help="acme 384, scep 2048 default")
    flag = argparse.BooleanOptionalAction
    parser.add_argument("--hardware-bound", action=flag, help="acme: a Secure Enclave key")
    parser.add_argument("--attest", action=flag, help="acme: attested by the hardware")
    parser.add_argument("--key-usage", type=int, metavar="N", help="key usage bits (1 sign, 4 enc)")
    parser.add_argument("--extended-key-usage", nargs="+", metavar="OID", help="acme only")
    parser.add_argument("--name", help="scep: the CA's name")
    parser.add_argument("--retries", type=int, metavar="N", help="scep only")
    parser.add_argument("--retry-delay", type=int, metavar="SECONDS", help="scep only")
    parser.add_argument("--description", help="the admin's note (never sent to devices)")


def _add_credential(command: BaseCommand, options: dict) -> None:
    source = options["source"]
    mine = CREDENTIAL_OPTIONS[source]
    others = {option for table in CREDENTIAL_OPTIONS.values() for option in table} - set(mine)
    given = sorted(option for option in others if options[option] is not None)
    if given:
        raise CommandError(f"--{given[0].replace('_', '-')} is not an option of {source}")
    chosen = {key: options[option] for option, key in mine.items() if options[option] is not None}
    existed = Declaration.objects.filter(identifier=options["identifier"]).exists()
    declaration = serve_credential(
        options["identifier"], source, chosen, by=ACTOR, description=options["description"]
    )
    command.stdout.write(_served_line(declaration, existed))


# --- list, show, delete ---------------------------------------------------------------------


def _list_arguments(parser: CommandParser) -> None:
    parser.add_argument("--kind", choices=KINDS)
    parser.add_argument("--json", action="store_true", help="JSON, one object per declaration")


def _list(command: BaseCommand, options: dict) -> None:
    declarations = Declaration.objects.prefetch_related("sets").order_by("kind", "identifier")
    if options["kind"]:
        declarations = declarations.filter(kind=options["kind"])
    failing = states.failing_by_declaration()
    listed = [
        {
            "identifier": d.identifier,
            "kind": d.kind,
            "type": d.type,
            "server_token": d.server_token,
            "sets": sorted(s.name for s in d.sets.all()),
            "devices": len(store.affected_devices(d.identifier)),
            "failing": failing.get(d.identifier, 0),
            "description": d.description,
            "updated_at": d.updated_at.isoformat(),
        }
        for d in declarations
    ]
    if options["json"]:
        command.stdout.write(json.dumps(listed, indent=2))
        return
    if not listed:
        command.stdout.write("no declaration yet: mdm_declaration add FILE.json")
        return
    rows = [("IDENTIFIER", "KIND", "TYPE", "SERVERTOKEN", "SETS", "DEVICES", "FAILING")]
    for d in listed:
        token, names = d["server_token"][:TOKEN_SHOWN], ", ".join(d["sets"]) or "-"
        counted = (str(d["devices"]), str(d["failing"]))
        rows.append((d["identifier"], d["kind"], d["type"], token, names, *counted))
    _table(command, rows)


def _identifier_arguments(parser: CommandParser) -> None:
    parser.add_argument("identifier", metavar="IDENTIFIER")


def _show(command: BaseCommand, options: dict) -> None:
    declaration = _declaration(options["identifier"])
    write = command.stdout.write
    write(json.dumps(as_shown(declaration), indent=2, ensure_ascii=False))  # secrets masked
    write(f"kind: {declaration.kind}")
    if declaration.description:
        write(f"description: {declaration.description}")
    write(f"updated: {_when(declaration.updated_at)} by {declaration.updated_by or '-'}")
    direct = sorted(s.name for s in declaration.sets.all())
    write(f"in sets: {', '.join(direct) or '-'}")
    reached = DeclarationSet.objects.filter(pk__in=store.sets_including(declaration.identifier))
    through = sorted(set(reached.values_list("name", flat=True)) - set(direct))
    if through:
        write(f"through a reference, in sets: {', '.join(through)}")
    write(f"refers to: {', '.join(sorted(references(declaration))) or '-'}")
    write(f"referred to by: {', '.join(store.referrers(declaration)) or '-'}")
    if hasattr(declaration, "served"):
        served = declaration.served
        write(
            f"served by the portal: {served.source}, {served.content_type}, {served.size} "
            f"bytes, SHA-256 {served.sha256 or '-'}, {served.downloads} download(s), last "
            f"{_when(served.last_download_at)}"
        )
    rows = states.declaration_rows(declaration)
    write(f"devices that should have it: {len(store.affected_devices(declaration.identifier))}")
    write("states: " + ", ".join(f"{state} {n}" for state, n in states.counts(rows).items()))
    for row in rows:
        if row.state == states.FAILED:
            codes = ", ".join(str(r.get("code", "?")) for r in row.reasons) or "invalid"
            write(f"  failed on {row.device.udid}: {codes}")


def _delete(command: BaseCommand, options: dict) -> None:
    declaration = _declaration(options["identifier"])
    queued = store.delete_declaration(declaration, by=ACTOR)
    command.stdout.write(f"deleted {options['identifier']}; {_queued(queued)}")


# --- set create | delete | list | add | remove ----------------------------------------------


def _set_arguments(parser: CommandParser) -> None:
    actions = parser.add_subparsers(dest="set_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new, empty set")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--description", default="")
    delete = actions.add_parser("delete", help="delete a set (its devices lose what it gave)")
    delete.add_argument("name", metavar="NAME")
    actions.add_parser("list", help="each set: its declarations, devices and groups")
    for action, what in (("add", "put declarations in"), ("remove", "take declarations out of")):
        given = actions.add_parser(action, help=f"{what} a set")
        given.add_argument("name", metavar="NAME")
        given.add_argument("identifiers", nargs="+", metavar="IDENTIFIER")


def _set_command(command: BaseCommand, options: dict) -> None:
    action, name = options["set_action"], options.get("name")
    if action == "create":
        sets.create_set(name, description=options["description"], by=ACTOR)
        command.stdout.write(f"set {name.strip()!r} created")
    elif action == "delete":
        queued = sets.delete_set(_set(name), by=ACTOR)
        command.stdout.write(f"set {name.strip()!r} deleted; {_queued(queued)}")
    elif action == "list":
        _set_list(command)
    else:
        declaration_set = _set(name)
        declarations = _declarations(options["identifiers"])
        change = sets.add_declarations if action == "add" else sets.remove_declarations
        queued = change(declaration_set, declarations, by=ACTOR)
        done = "added to" if action == "add" else "removed from"
        command.stdout.write(f"{len(declarations)} {done} {name.strip()!r}; {_queued(queued)}")


def _set_list(command: BaseCommand) -> None:
    found = DeclarationSet.objects.prefetch_related("declarations", "groups").order_by("name")
    rows = [("NAME", "DECLARATIONS", "DEVICES", "GROUPS", "REACHES")]
    for s in found:
        identifiers = sorted(d.identifier for d in s.declarations.all())
        groups = sorted(g.name for g in s.groups.all())
        rows.append(
            (
                s.name,
                ", ".join(identifiers) or "-",
                str(s.devices.count()),
                ", ".join(groups) or "-",
                f"{len(store.devices_of_sets([s.pk]))} device(s)",
            )
        )
    if len(rows) == 1:
        command.stdout.write("no declaration set yet: mdm_declaration set create NAME")
        return
    _table(command, rows)


# --- assign, unassign -----------------------------------------------------------------------


def _assign_arguments(parser: CommandParser) -> None:
    parser.add_argument("set", metavar="SET")
    parser.add_argument(
        "--device", nargs="+", action="extend", default=[], metavar="UDID_OR_SERIAL"
    )
    parser.add_argument("--group", nargs="+", action="extend", default=[], metavar="NAME")


def _targets(options: dict) -> tuple:
    if not options["device"] and not options["group"]:
        raise CommandError("name devices (--device UDID_OR_SERIAL ...) or groups (--group NAME)")
    devices = find_devices("\n".join(options["device"])) if options["device"] else None
    groups = []
    for name in dict.fromkeys(options["group"]):
        group = DeviceGroup.objects.filter(name=name).first()
        if group is None:
            raise CommandError(f"no device group named {name!r}")
        groups.append(group)
    return devices, groups


def _assignment(change: Callable, done: str) -> Callable[[BaseCommand, dict], None]:
    def run(command: BaseCommand, options: dict) -> None:
        declaration_set = _set(options["set"])
        devices, groups = _targets(options)
        queued = change(declaration_set, devices=devices, groups=groups, by=ACTOR)
        count = devices.count() if devices is not None else 0
        names = f" ({', '.join(g.name for g in groups)})" if groups else ""
        command.stdout.write(
            f"set {declaration_set.name!r} {done} {count} device(s) and {len(groups)} "
            f"group(s){names}; {_queued(queued)}"
        )

    return run


# --- status ---------------------------------------------------------------------------------


def _status_arguments(parser: CommandParser) -> None:
    parser.add_argument("device", nargs="?", metavar="UDID_OR_SERIAL", help="one device's")
    parser.add_argument("--failed", action="store_true", help="only the failed ones")
    parser.add_argument("--all", action="store_true", help="the active ones too (whole fleet)")
    parser.add_argument("--json", action="store_true")


def _one_device(reference: str) -> Device:
    devices = list(find_devices(reference)[:2])
    if len(devices) > 1:
        raise CommandError(f"{reference} is the serial number of several devices: give a UDID")
    return devices[0]


def _reasons(row: states.Row) -> list[dict]:
    return [
        {**reason, "meaning": REASONS.get(str(reason.get("code")), "")}
        for reason in row.reasons
        if isinstance(reason, dict)
    ]


def _row_json(row: states.Row) -> dict:
    reported = row.reported
    return {
        "device": row.device.udid,
        "serial_number": row.device.serial_number,
        "identifier": row.identifier,
        "kind": row.kind,
        "type": row.type,
        "state": row.state,
        "server_token": row.server_token,
        "reported_server_token": reported.server_token if reported else None,
        "reported_at": reported.reported_at.isoformat() if reported else None,
        "reasons": _reasons(row),
    }


def _status(command: BaseCommand, options: dict) -> None:
    device = _one_device(options["device"]) if options["device"] else None
    if device is not None:
        rows = states.device_rows(device)
    else:
        rows = [r for r in states.fleet_rows() if options["all"] or r.state != states.ACTIVE]
    if options["failed"]:
        rows = [row for row in rows if row.state == states.FAILED]
    report = states.last_report(device) if device is not None else None
    report_at = report.last_report_at if report is not None else None
    if options["json"]:
        listed = [_row_json(row) for row in rows]
        if device is not None:
            at = report_at.isoformat() if report_at else None
            listed = {"device": device.udid, "last_report_at": at, "declarations": listed}
        command.stdout.write(json.dumps(listed, indent=2))
        return
    if device is not None:
        command.stdout.write(
            f"{device.udid} ({device.serial_number or '-'}, {device.platform or '?'} "
            f"{device.os_version or '?'}): last status report {_when(report_at)}"
        )
    if not rows:
        command.stdout.write("nothing to show" if options["all"] else "nothing that is not active")
        return
    header = ("DEVICE", "IDENTIFIER", "KIND", "STATE", "REPORTED")
    table = [header[1:] if device is not None else header]
    for row in rows:
        reported = _when(row.reported.reported_at) if row.reported else "-"
        cells = (row.identifier, row.kind, row.state, reported)
        table.append(cells if device is not None else (row.device.udid, *cells))
    _table(command, table)
    for row in rows:
        for reason in _reasons(row):
            meaning = f" ({reason['meaning']})" if reason["meaning"] else ""
            described = f": {reason['description']}" if reason.get("description") else ""
            where = row.identifier if device is not None else f"{row.device.udid} {row.identifier}"
            command.stdout.write(f"  {where}: {reason.get('code')}{described}{meaning}")


# name, help, arguments, run: `mdm_declaration --help` lists them in this order.
SUBCOMMANDS: list[tuple[str, str, Callable[[CommandParser], None], Callable]] = [
    ("add", "add or update declarations from a JSON file (all or none)", _add_arguments, _add),
    ("add-data", "an asset whose data the portal serves", _add_data_arguments, _add_data),
    (
        "add-credential",
        "an ACME or SCEP credential asset the portal makes for each device",
        _add_credential_arguments,
        _add_credential,
    ),
    ("list", "the declarations, their sets, devices and failures", _list_arguments, _list),
    (
        "show",
        "a declaration as devices get it, where and how it stands",
        _identifier_arguments,
        _show,
    ),
    ("delete", "delete a declaration nothing refers to", _identifier_arguments, _delete),
    ("set", "declaration sets: create, delete, list, add, remove", _set_arguments, _set_command),
    (
        "assign",
        "give a set to devices and groups",
        _assign_arguments,
        _assignment(sets.assign, "given to"),
    ),
    (
        "unassign",
        "take a set from devices and groups",
        _assign_arguments,
        _assignment(sets.unassign, "taken from"),
    ),
    ("status", "where declarations stand on devices", _status_arguments, _status),
]
