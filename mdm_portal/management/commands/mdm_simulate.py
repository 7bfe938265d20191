"""`mdm_simulate`: the fleet simulator (the package simulator/) as a management command.

A thin shell: the options are the simulator's own (simulator/cli.py). What it adds is the
enrollment: without --enrollment it uses the portal's "Simulated devices" enrollment (created
on first use, through the same function as `mdm_enrollment create`), which works when the
command runs beside the portal's database (not with --setup-assistant: there the DEP profile
names the enrollment). `--make-attestation-ca DIR` only writes the test attestation CA that an
ACME fleet attests with (`--attestation-ca DIR`), `--make-device-ca DIR` the test device CA a
Setup Assistant fleet signs its MachineInfo with (`--device-ca DIR`).
"""

from django.core.management.base import BaseCommand, CommandError

from enrollment.enrollments import EnrollmentError, EnrollmentSpec, create_enrollment
from enrollment.mobileconfig import unavailable_reason
from enrollment.models import Enrollment
from simulator import SimulatorError, run, summary_text
from simulator.cli import (
    DESCRIPTION,
    add_arguments,
    make_attestation_ca,
    make_device_ca,
    options_from,
)

ACTOR = "mdm_simulate"
ENROLLMENT_NAME = "Simulated devices"


def simulated_enrollment() -> Enrollment:
    """The active "Simulated devices" enrollment, made when there is none usable. Its devices
    sign their messages (SignMessage): the quickstart has no TLS proxy to pass certificates."""
    for enrollment in Enrollment.objects.filter(name=ENROLLMENT_NAME).order_by("-id"):
        if unavailable_reason(enrollment) is None:
            return enrollment
    try:
        return create_enrollment(EnrollmentSpec(name=ENROLLMENT_NAME, sign_message=True), by=ACTOR)
    except EnrollmentError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = DESCRIPTION

    def add_arguments(self, parser):
        add_arguments(
            parser,
            enrollment_help="the enrollment token (the end of the enrollment link); default: "
            f'the portal\'s "{ENROLLMENT_NAME}" enrollment, created if missing',
        )

    def handle(self, *args, **options):
        values = dict(options)
        for option, make in (
            ("make_attestation_ca", make_attestation_ca),
            ("make_device_ca", make_device_ca),
        ):
            if values.get(option):
                try:
                    self.stdout.write(make(values[option]))
                except SimulatorError as exc:
                    raise CommandError(str(exc)) from None
                return
        if not values.get("url"):
            raise CommandError("--url is required")
        # From Setup Assistant the DEP profile names the enrollment: no link is used.
        if not values.get("enrollment") and not values.get("setup_assistant"):
            values["enrollment"] = simulated_enrollment().token
        try:
            stats = run(options_from(values))  # progress on the process's stderr
        except SimulatorError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(summary_text(stats))
        if stats.failed:
            raise CommandError("the simulation failed: see the errors above")
