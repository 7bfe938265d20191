from django.core.management.base import BaseCommand, CommandError

from commands.apns import push_devices
from commands.models import PushAttempt
from devices.models import Device


class Command(BaseCommand):
    help = "Push devices now (wake them to poll the server URL) and print each result."

    def add_arguments(self, parser):
        parser.add_argument("udids", nargs="*", metavar="UDID")
        parser.add_argument("--all", action="store_true", help="every managed device")

    def handle(self, *args, **options):
        if bool(options["udids"]) == options["all"]:
            raise CommandError("name the devices (UDIDs) or --all, not both")
        if options["all"]:
            ids = list(
                Device.objects.filter(state=Device.State.ENROLLED).values_list("id", flat=True)
            )
        else:
            found = dict(Device.objects.filter(udid__in=options["udids"]).values_list("udid", "id"))
            missing = sorted(set(options["udids"]) - set(found))
            if missing:
                raise CommandError("unknown device(s): " + ", ".join(missing))
            ids = list(found.values())
        summary = push_devices(ids, PushAttempt.Kind.MANUAL)
        for udid, status, reason in summary.results:
            self.stdout.write(f"{udid}: {status or 'not sent'} {reason}".rstrip())
        if summary.reason:
            self.stdout.write(f"no push sent: {summary.reason}")
        self.stdout.write(
            f"{summary.ok} ok of {summary.sent} sent, {summary.skipped} not pushable, "
            f"{summary.not_attempted} not attempted"
        )
