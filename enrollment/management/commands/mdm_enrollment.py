from dataclasses import replace

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from certs.pushcert_demo import real_push_certificate_warning
from commands.catalog import ALL_RIGHTS
from devices.groups import GroupError, get_or_create_group
from enrollment.enrollments import (
    EnrollmentError,
    EnrollmentSpec,
    create_enrollment,
    deactivate_enrollment,
    enrollment_link,
    enrollment_problems,
    identity_summary,
)
from enrollment.mobileconfig import unavailable_reason
from enrollment.models import Enrollment

ACTOR = "mdm_enrollment"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Enrollment links: `create --name N [...]` makes one and prints its link "
        "(MDM_PUBLIC_URL/enroll/<token>/); `list` shows them, `show TOKEN` one; "
        "`deactivate TOKEN` turns one off."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", metavar="{create,list,show,deactivate,renew}"
        )
        actions.required = True

        create = actions.add_parser("create", help="create an enrollment and print its link")
        create.add_argument("--name", required=True, help="what the enrollment is for")
        create.add_argument(
            "--access-rights",
            type=int,
            default=ALL_RIGHTS,
            help=f"AccessRights bit flags (default {ALL_RIGHTS}: all); never 0, 2 needs 1, "
            "128 needs 64",
        )
        create.add_argument(
            "--identity",
            choices=[choice.value for choice in Enrollment.Identity],
            default=Enrollment.Identity.SCEP.value,
            help="how the device gets its identity: acme (iOS 16, macOS 13.1 and later: the "
            "key is made in the device's hardware, which attests it; recommended), scep "
            "(default, for older OS versions: the key never leaves the device either) or "
            "pkcs12 (the key is made on the server and travels in the profile)",
        )
        create.add_argument(
            "--acme-without-attestation",
            action="store_true",
            help="with --identity acme: devices that cannot attest (Macs before macOS 14 or "
            "without Apple silicon or T2) may enroll; only the one-time ClientIdentifier "
            "vouches for them",
        )
        create.add_argument(
            "--sign-message",
            action="store_true",
            help="devices sign every message (Mdm-Signature header)",
        )
        create.add_argument(
            "--no-checkout-when-removed",
            action="store_true",
            help="devices do not send CheckOut when the profile is removed",
        )
        create.add_argument("--group", help="put enrolled devices in this group (created if new)")
        create.add_argument(
            "--expires-days", type=_positive, help="the link stops working after this many days"
        )
        create.add_argument(
            "--max-uses", type=_positive, help="at most this many profiles are handed out"
        )

        actions.add_parser("list", help="every enrollment with its link and state")

        show = actions.add_parser("show", help="one enrollment: its link and every setting")
        show.add_argument("token", help="the enrollment's token (the end of its link) or id")

        deactivate = actions.add_parser("deactivate", help="turn an enrollment link off")
        deactivate.add_argument("token", help="the enrollment's token (the end of its link)")

        renew = actions.add_parser(
            "renew", help="queue renewal profiles for device identities close to expiry"
        )
        renew.add_argument("--days", type=_positive, default=30, help="expiring within N days")
        renew.add_argument("--device", metavar="UDID", help="renew this device now")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list()
        elif action == "show":
            self._show(options["token"])
        elif action == "renew":
            self._renew(options)
        else:
            self._deactivate(options["token"])

    def _renew(self, options) -> None:
        from devices.models import Device
        from enrollment.renewal import RenewalError, renew_expiring_identities, renew_identity

        if options["device"]:
            device = Device.objects.filter(udid=options["device"]).first()
            if device is None:
                raise CommandError(f"unknown device {options['device']}")
            try:
                command = renew_identity(device, by="mdm_enrollment")
            except RenewalError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"renewal profile queued: {command.uuid}")
            return
        result = renew_expiring_identities(options["days"])
        self.stdout.write(f"renewals queued: {result['renewed']}, failed: {result['failed']}")

    def _create(self, options) -> None:
        spec = EnrollmentSpec(
            name=options["name"],
            access_rights=options["access_rights"],
            identity=options["identity"],
            acme_attestation=not options["acme_without_attestation"],
            sign_message=options["sign_message"],
            check_out_when_removed=not options["no_checkout_when_removed"],
            expires_days=options["expires_days"],
            max_uses=options["max_uses"],
        )
        problems = enrollment_problems(spec)  # before a group is created for it
        if problems:
            raise CommandError("; ".join(problems.values()))
        try:
            with transaction.atomic():
                if options["group"]:
                    group, created = get_or_create_group(options["group"], by=ACTOR)
                    if created:
                        self.stdout.write(f"group created: {group.name}")
                    spec = replace(spec, group=group)
                enrollment = create_enrollment(spec, by=ACTOR)
        except (EnrollmentError, GroupError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"enrollment created: {enrollment.name}")
        self.stdout.write(enrollment_link(enrollment))
        # Created all the same: the certificate may well be imported before anyone enrolls.
        warning = real_push_certificate_warning()
        if warning:
            self.stderr.write(f"WARNING: {warning}")

    def _list(self) -> None:
        enrollments = Enrollment.objects.select_related("group").order_by("-created_at", "-id")
        if not enrollments:
            self.stdout.write("no enrollments")
            return
        now = timezone.now()
        for enrollment in enrollments:
            reason = unavailable_reason(enrollment, now)
            state = {None: "active", "used_up": "used up"}.get(reason, reason)
            uses = f"{enrollment.uses}/{enrollment.max_uses if enrollment.max_uses else '-'}"
            expiry = (
                f"{enrollment.expires_at:%Y-%m-%d %H:%M}Z" if enrollment.expires_at else "never"
            )
            group = f"  group={enrollment.group.name}" if enrollment.group else ""
            self.stdout.write(
                f"{enrollment.name}  {enrollment_link(enrollment)}\n"
                f"    identity={_identity(enrollment)}  rights={enrollment.access_rights}"
                f"  uses={uses}  expires={expiry}  state={state}{group}"
            )

    def _show(self, reference: str) -> None:
        enrollment = _find(reference)
        reason = unavailable_reason(enrollment)
        rows = [
            ("name", enrollment.name),
            ("link", enrollment_link(enrollment)),
            ("state", {None: "active", "used_up": "used up"}.get(reason, reason)),
            ("identity", f"{_identity(enrollment)} ({identity_summary(enrollment)})"),
            ("access rights", enrollment.access_rights),
            ("group", enrollment.group.name if enrollment.group else "none"),
            ("uses", f"{enrollment.uses} of {enrollment.max_uses or 'no limit'}"),
            (
                "expires",
                f"{enrollment.expires_at:%Y-%m-%d %H:%M}Z" if enrollment.expires_at else "never",
            ),
            ("signed messages", "yes" if enrollment.sign_message else "no"),
            ("checkout when removed", "yes" if enrollment.check_out_when_removed else "no"),
            (
                "created",
                f"{enrollment.created_at:%Y-%m-%d %H:%M}Z by {enrollment.created_by or '-'}",
            ),
        ]
        for label, value in rows:
            self.stdout.write(f"{label + ':':<23}{value}")
        if enrollment.identity == Enrollment.Identity.ACME and not enrollment.acme_attestation:
            self.stdout.write(
                "WARNING: ACME without attestation: only the one-time ClientIdentifier vouches "
                "for a device, not its hardware"
            )

    def _deactivate(self, token: str) -> None:
        enrollment = Enrollment.objects.filter(token=token).first()
        if enrollment is None:
            raise CommandError("no enrollment has this token")
        deactivate_enrollment(enrollment, by=ACTOR)
        self.stdout.write(f"enrollment deactivated: {enrollment.name}")


def _identity(enrollment: Enrollment) -> str:
    """acme, scep or pkcs12, with "(without attestation)" for ACME allowed without it."""
    if enrollment.identity == Enrollment.Identity.ACME and not enrollment.acme_attestation:
        return f"{enrollment.identity} (without attestation)"
    return enrollment.identity


def _find(reference: str) -> Enrollment:
    enrollments = Enrollment.objects.select_related("group")
    enrollment = enrollments.filter(token=reference).first()
    if enrollment is None and reference.isdigit():
        enrollment = enrollments.filter(pk=int(reference)).first()
    if enrollment is None:
        raise CommandError("no enrollment has this token (or id)")
    return enrollment
