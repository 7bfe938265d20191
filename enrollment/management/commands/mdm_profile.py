from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from devices.models import Device, DeviceGroup
from enrollment.library import (
    LibraryError,
    assign,
    assigned_devices,
    installed_version,
    unassign,
    upload_profile,
)
from enrollment.models import Profile

ACTOR = "mdm_profile"


class Command(BaseCommand):
    help = (
        "The configuration-profile library: upload FILE [--name N]; "
        "assign ID (--device UDID | --group G); unassign ID (--device UDID | --group G); list."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        upload = sub.add_parser("upload", help="add or replace a .mobileconfig")
        upload.add_argument("file")
        upload.add_argument("--name", default="")
        for name in ("assign", "unassign"):
            action = sub.add_parser(name, help=f"{name} a profile (by id or identifier)")
            action.add_argument("profile")
            target = action.add_mutually_exclusive_group(required=True)
            target.add_argument("--device", metavar="UDID")
            target.add_argument("--group", metavar="G")
        sub.add_parser("list", help="the library, with assignments and installs")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except LibraryError as exc:
            raise CommandError(str(exc)) from None

    def _upload(self, options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        profile = upload_profile(path.read_bytes(), name=options["name"], uploaded_by=ACTOR)
        self.stdout.write(f"{profile.pk} {profile.identifier} ({profile.name})")

    def _profile(self, reference: str) -> Profile:
        found = Profile.objects.filter(identifier=reference).first()
        if found is None and reference.isdigit():
            found = Profile.objects.filter(pk=int(reference)).first()
        if found is None:
            raise CommandError(f"no profile {reference!r} in the library")
        return found

    def _target(self, options) -> dict:
        if options["device"]:
            device = Device.objects.filter(udid=options["device"]).first()
            if device is None:
                raise CommandError(f"unknown device {options['device']}")
            return {"device": device}
        group = DeviceGroup.objects.filter(name=options["group"]).first()
        if group is None:
            raise CommandError(f"unknown group {options['group']}")
        return {"group": group}

    def _assign(self, options):
        profile = self._profile(options["profile"])
        queued, skipped = assign(profile, **self._target(options), by=ACTOR)
        self.stdout.write(f"assigned; InstallProfile queued for {queued} device(s)")
        if skipped:
            self.stdout.write(
                f"{skipped} device(s) skipped: enrolled without the right to install profiles, "
                "or push token invalid"
            )

    def _unassign(self, options):
        profile = self._profile(options["profile"])
        removed, skipped = unassign(profile, **self._target(options), by=ACTOR)
        self.stdout.write(f"unassigned; RemoveProfile queued for {removed} device(s)")
        if skipped:
            self.stdout.write(
                f"{skipped} device(s) skipped: no right to remove profiles, or push token invalid"
            )

    def _list(self, options):
        for profile in Profile.objects.order_by("identifier"):
            wanted = assigned_devices(profile).count()
            installed = installed_version(profile).count()
            self.stdout.write(
                f"{profile.pk:>4} {profile.identifier}  v{profile.version}  "
                f"assigned to {wanted} device(s), installed on {installed}  ({profile.name})"
            )
