import json

from django.core.management.base import BaseCommand, CommandError

from commands.history import recent_commands
from devices.models import Device
from devices.summary import device_summary


class Command(BaseCommand):
    help = "Print a device (state, dates, inventory, recent commands) as JSON, or --list them."

    def add_arguments(self, parser):
        parser.add_argument("udid", nargs="?")
        parser.add_argument("--list", action="store_true", help="list every device")
        parser.add_argument("--recent", type=int, default=20, help="how many recent commands")

    def handle(self, *args, **options):
        if options["list"]:
            rows = Device.objects.order_by("udid").values(
                "udid", "state", "device_name", "serial_number", "os_version", "last_seen_at"
            )
            for row in rows:
                row["last_seen_at"] = row["last_seen_at"] and row["last_seen_at"].isoformat()
                self.stdout.write(json.dumps(row))
            return
        if not options["udid"]:
            raise CommandError("give a UDID, or --list")
        device = Device.objects.select_related("group").filter(udid=options["udid"]).first()
        if device is None:
            raise CommandError(f"unknown device {options['udid']}")
        summary = device_summary(device)
        summary["recent_commands"] = recent_commands(device, options["recent"])
        self.stdout.write(json.dumps(summary, indent=2, sort_keys=True))
