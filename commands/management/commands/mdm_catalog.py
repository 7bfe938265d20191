import json

from django.core.management.base import BaseCommand, CommandError

from commands.catalog import DEFINITIONS, CatalogError, get_definition, never_not_now
from commands.catalog import required_rights as rights_for
from commands.catalog.definitions import KeySpec


def _platforms(definition) -> str:
    return ", ".join(
        f"{name} {support.introduced}+" + ("" if support.device_channel else " (user channel)")
        for name, support in sorted(definition.platforms.items())
        if support.introduced is not None
    )


def _key_lines(keys: tuple[KeySpec, ...], depth: int = 1) -> list[str]:
    lines = []
    for key in keys:
        flags = "required" if key.required else "optional"
        if key.allowed:
            flags += " one of " + ", ".join(str(v) for v in key.allowed)
        unsupported = [p for p, introduced in key.platforms.items() if introduced is None]
        if unsupported:
            flags += " (not on " + ", ".join(sorted(unsupported)) + ")"
        lines.append(f"{'  ' * depth}{key.name} <{key.type}> {flags}")
        lines += _key_lines(key.subkeys, depth + 1)
    return lines


class Command(BaseCommand):
    help = (
        "List the command catalog (name, rights, platforms, NotNow), or show one RequestType "
        "with its keys and types. --json for machine-readable output."
    )

    def add_arguments(self, parser):
        parser.add_argument("request_type", nargs="?")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        if options["request_type"]:
            try:
                definition = get_definition(options["request_type"])
            except CatalogError as exc:
                raise CommandError(str(exc)) from None
            self._show(definition, options["json"])
            return
        rows = [self._summary(d) for _, d in sorted(DEFINITIONS.items())]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=1))
            return
        for row in rows:
            self.stdout.write(
                f"{row['request_type']:36} rights {row['access_rights']:>5}  "
                f"{'never NotNow' if row['never_not_now'] else 'may NotNow  '}  "
                f"{row['platforms']}"
            )
        self.stdout.write(f"{len(rows)} request types")

    def _summary(self, definition) -> dict:
        return {
            "request_type": definition.request_type,
            "title": definition.title,
            "access_rights": rights_for(definition.request_type),
            "never_not_now": never_not_now(definition.request_type),
            "platforms": _platforms(definition),
        }

    def _show(self, definition, as_json: bool) -> None:
        summary = self._summary(definition)
        if as_json:
            summary["keys"] = [_key_json(k) for k in definition.keys]
            self.stdout.write(json.dumps(summary, indent=1))
            return
        self.stdout.write(f"{definition.request_type}: {definition.title}")
        self.stdout.write(f"  {definition.description}")
        self.stdout.write(f"  AccessRights: {summary['access_rights']}")
        self.stdout.write(f"  NotNow: {'never' if summary['never_not_now'] else 'possible'}")
        self.stdout.write(f"  platforms: {summary['platforms']}")
        self.stdout.write("  keys:" if definition.keys else "  keys: none")
        for line in _key_lines(definition.keys, 2):
            self.stdout.write(line)


def _key_json(key: KeySpec) -> dict:
    return {
        "name": key.name,
        "type": key.type,
        "required": key.required,
        "allowed": list(key.allowed) if key.allowed else None,
        "subkeys": [_key_json(k) for k in key.subkeys],
    }
