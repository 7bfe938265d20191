import json

from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from commands.catalog import CatalogError
from commands.queue import EnqueueError, enqueue_json, queueable
from devices.models import Device
from devices.selection import SelectionError, devices_matching


class Command(BaseCommand):
    help = (
        "Queue an MDM command for devices and print its CommandUUID. "
        "Usage: mdm_enqueue <udid...|--all|--group G|--filter Q> <RequestType> [--json '{...}'] "
        "[--raw] [--reason TEXT]. The command is validated by the catalog (see mdm_catalog)."
    )

    def add_arguments(self, parser):
        parser.add_argument("args", nargs="+", metavar="UDID... RequestType")
        parser.add_argument("--all", action="store_true", help="every managed device")
        parser.add_argument("--group", help="every managed device of this group")
        parser.add_argument(
            "--filter",
            help="every managed device the device list's filter selects, e.g. "
            "'platform=iOS&seen=stale' (q, state, group, platform, os_version, seen)",
        )
        parser.add_argument(
            "--json",
            default="{}",
            help="the command's keys as a JSON object (data keys as base64 strings)",
        )
        parser.add_argument(
            "--raw",
            action="store_true",
            help="skip the catalog's key checks (keys or RequestTypes it does not know yet)",
        )
        parser.add_argument("--reason", default="", help="why (required for ClearPasscode)")
        parser.add_argument(
            "--no-sign", action="store_true", help="InstallProfile: send the profile unsigned"
        )
        parser.add_argument(
            "--encrypt",
            action="store_true",
            help="InstallProfile: encrypt the payload content for the (single) device",
        )
        parser.add_argument(
            "--drop-disallowed-queries",
            action="store_true",
            help="DeviceInformation: drop queries the AccessRights do not allow, not refuse",
        )

    def handle(self, *args, **options):
        *udids, request_type = args
        devices = self._devices(udids, options)
        try:
            payload = json.loads(options["json"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--json is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise CommandError("--json must be a JSON object")
        try:
            command = enqueue_json(
                devices,
                request_type,
                payload,
                queued_by="mdm_enqueue",
                raw=options["raw"],
                reason=options["reason"],
                drop_disallowed_queries=options["drop_disallowed_queries"],
                options={"sign": not options["no_sign"], "encrypt": options["encrypt"]},
            )
        except (EnqueueError, CatalogError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(command.uuid)

    def _devices(self, udids: list[str], options):
        chosen = [bool(udids), options["all"], bool(options["group"]), bool(options["filter"])]
        if sum(chosen) != 1:
            raise CommandError(
                "name the devices: UDIDs, or --all, or --group G, or --filter Q (exactly one)"
            )
        if options["all"]:
            return self._bulk(Device.objects.all(), "no managed device")
        if options["group"]:
            return self._bulk(
                Device.objects.filter(group__name=options["group"]),
                f"group {options['group']!r} has no managed device",
            )
        if options["filter"]:
            try:
                matched = devices_matching(QueryDict(options["filter"]))
            except SelectionError as exc:
                raise CommandError(f"--filter: {exc}") from None
            return self._bulk(matched, "the filter matches no managed device")
        found = list(Device.objects.filter(udid__in=udids))
        missing = sorted(set(udids) - {d.udid for d in found})
        if missing:
            raise CommandError("unknown device(s): " + ", ".join(missing))
        return found

    def _bulk(self, matched, empty: str):
        """The devices enqueue accepts; the others (not managed, push token invalid) are left
        out, and said so on stderr."""
        devices = queueable(matched)
        count = devices.count()
        if not count:
            raise CommandError(empty)
        left_out = matched.count() - count
        if left_out:
            self.stderr.write(f"{left_out} device(s) left out: not managed, or push token invalid")
        return devices
