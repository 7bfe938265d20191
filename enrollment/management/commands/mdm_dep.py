"""`mdm_dep`: Automated Device Enrollment (Apple Business Manager / School Manager).

Server tokens: `token-certificate` (the certificate to upload in ABM), `import-token`
(the server token ABM gives), `tokens` (each server, its token's expiry and its last sync).
The UI and the API call the same functions (enrollment/dep_tokens.py).
Devices and profiles (enrollment/dep_cli.py): `sync`, `profile define|assign|list`, `devices`,
`account`, `disown`.

Each subcommand is a pair of small functions (its arguments, its run) and one line of the
SUBCOMMANDS table at the end: adding one is adding a pair and a line.
"""

import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from certs.dep_keys import MAX_TOKEN_BYTES
from enrollment import dep_cli, dep_tokens
from enrollment.dep_client import DepError
from enrollment.dep_models import DepServer
from enrollment.dep_profiles import DepProfileError
from enrollment.dep_tokens import DepTokenError

ACTOR = "mdm_dep"
UPLOAD_STEPS = (
    "In Apple Business Manager (or School Manager), Preferences > Your MDM Servers: add the "
    "MDM server (or edit it), upload this certificate as its public key, then download its "
    "server token (a .p7m) and run: python manage.py mdm_dep import-token FILE.p7m --name {name}"
)
# Refusals a subcommand may raise, shown as the command's error (add the DEP client's too).
ERRORS: tuple[type[Exception], ...] = (DepTokenError, DepError, DepProfileError)


def _read(path: str, what: str, limit: int) -> bytes:
    """The file's first `limit` + 1 bytes: enough to tell a file too large from one that fits,
    without reading a wrong (huge) file whole."""
    try:
        with Path(path).open("rb") as file:
            return file.read(limit + 1)
    except OSError as exc:
        raise CommandError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def _day(value) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


# --- token-certificate --------------------------------------------------------------------------


def _token_certificate_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--name",
        help="the DEP server (created with its key when new; e.g. the MDM server's name in ABM); "
        "optional when there is exactly one",
    )
    parser.add_argument("--out", metavar="FILE", help="write the PEM here (default: stdout)")


def _token_certificate(command: BaseCommand, options: dict) -> None:
    name = options["name"]
    created = False
    if name and not DepServer.objects.filter(name=name).exists():
        server, created = dep_tokens.create_server(name, actor=ACTOR), True
    elif name or DepServer.objects.exists():
        server = dep_tokens.find_server(name)
    else:
        raise CommandError(
            "no DEP server yet: name it with --name (e.g. the MDM server's name in ABM)"
        )
    pem = dep_tokens.token_certificate_pem(server)
    state = "created" if created else "kept (same key as before)"
    note = f"DEP server {server.name!r}: {state}; its certificate {server.key.sha256[:16]}..."
    steps = UPLOAD_STEPS.format(name=shlex.quote(server.name))
    if options["out"]:
        try:
            Path(options["out"]).write_text(pem)
        except OSError as exc:
            raise CommandError(f"cannot write {options['out']}: {exc.strerror}") from exc
        command.stdout.write(f"{note} written to {options['out']}")
        command.stdout.write(steps)
    else:
        command.stdout.write(pem, ending="")
        # The PEM alone on stdout (`> token.pem`); what to do with it on stderr.
        command.stderr.write(note)
        command.stderr.write(steps)


# --- import-token -------------------------------------------------------------------------------


def _import_token_arguments(parser: CommandParser) -> None:
    parser.add_argument("file", metavar="FILE.p7m", help="the server token downloaded from ABM")
    parser.add_argument("--name", help="the DEP server; optional when there is exactly one")


def _import_token(command: BaseCommand, options: dict) -> None:
    data = _read(options["file"], "server token", MAX_TOKEN_BYTES)
    server = dep_tokens.find_server(options["name"])
    renewal = server.token_imported_at is not None
    server = dep_tokens.import_token(server, data, actor=ACTOR)
    what = "renewed" if renewal else "imported"
    command.stdout.write(
        f"server token {what} for DEP server {server.name!r}: valid until "
        f"{_day(server.access_token_expiry)} UTC"
        + (" (devices, profiles and sync cursor kept)" if renewal else "")
    )


# --- tokens -------------------------------------------------------------------------------------


def _tokens_arguments(parser: CommandParser) -> None:
    pass


def _tokens(command: BaseCommand, options: dict) -> None:
    servers = DepServer.objects.defer("consumer_secret", "access_secret", "session_token")
    rows = [("NAME", "TOKEN EXPIRES (UTC)", "DAYS", "IMPORTED AT", "LAST SYNC", "RESULT")]
    now = timezone.now()
    for server in servers.order_by("name"):
        expiry = server.access_token_expiry
        days = "-" if expiry is None else str((expiry - now).days) if expiry > now else "expired"
        if server.last_sync_at is None:
            result = "never synced"
        else:
            result = "ok" if server.last_sync_ok else "failed"
            if server.last_sync_result:
                result = f"{result}: {server.last_sync_result.splitlines()[0][:80]}"
        imported = _day(server.token_imported_at) if server.token_imported_at else "no token"
        rows.append((server.name, _day(expiry), days, imported, _day(server.last_sync_at), result))
    if len(rows) == 1:
        command.stdout.write("no DEP server yet: mdm_dep token-certificate --name NAME")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        command.stdout.write("  ".join([*cells, row[-1]]))


# --- the subcommands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    arguments: Callable[[CommandParser], None]
    run: Callable[[BaseCommand, dict], None]


# ==== SUBCOMMANDS: one line per subcommand, in the order `mdm_dep --help` lists them. ====
SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "token-certificate",
        "the certificate to upload in ABM for a DEP server (created with its key when new)",
        _token_certificate_arguments,
        _token_certificate,
    ),
    Subcommand(
        "import-token",
        "import (or renew) a DEP server's token, the .p7m downloaded from ABM",
        _import_token_arguments,
        _import_token,
    ),
    Subcommand(
        "tokens",
        "each DEP server: token expiry, when imported, last sync and its result",
        _tokens_arguments,
        _tokens,
    ),
    # sync, profile define|assign|list, devices, account, disown (enrollment/dep_cli.py)
    *(Subcommand(*entry) for entry in dep_cli.SUBCOMMANDS),
]
# ==== end of SUBCOMMANDS ====


class Command(BaseCommand):
    help = (
        "Automated Device Enrollment (Apple Business Manager / School Manager): "
        + ", ".join(subcommand.name for subcommand in SUBCOMMANDS)
        + "."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        for subcommand in SUBCOMMANDS:
            subparser = sub.add_parser(subcommand.name, help=subcommand.help)
            subcommand.arguments(subparser)

    def handle(self, *args, **options) -> None:
        run = {subcommand.name: subcommand.run for subcommand in SUBCOMMANDS}
        try:
            run[options["subcommand"]](self, options)
        except ERRORS as exc:
            raise CommandError(str(exc)) from exc
