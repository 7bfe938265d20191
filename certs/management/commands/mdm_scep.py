"""`mdm_scep list|approve|reject`: SCEP requests waiting for an administrator's decision.

With MDM_SCEP_MANUAL_APPROVAL=true every valid SCEP request is kept PENDING; the client polls
(GetCertInitial) until it is approved (the certificate is issued) or rejected (FAILURE).
"""

import getpass

from django.core.management.base import BaseCommand, CommandError

from certs.models import ScepRequest
from certs.scep_approval import ScepAdminError, approve_request, pending_requests, reject_request
from enrollment.links import scep_request_enrollment


def _default_actor() -> str:
    try:
        return f"mdm_scep:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "mdm_scep"


class Command(BaseCommand):
    help = "SCEP requests waiting for approval: list them, approve or reject one."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="pending requests (or every request with --all)")
        listing.add_argument("--all", action="store_true", help="also decided requests")
        for name, text in (
            ("approve", "approve a pending request: issue its certificate"),
            ("reject", "reject a pending request: the client's next poll gets FAILURE"),
        ):
            action = sub.add_parser(name, help=text)
            action.add_argument("transaction_id", help="the request's SCEP transactionID")
            action.add_argument(
                "--subject", help="the request's subject, when two requests share the ID"
            )
            action.add_argument("--by", default=_default_actor(), help="who decides (audited)")
        sub.choices["reject"].add_argument("--reason", default="", help="recorded in the audit")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "list":
            self._list(show_all=options["all"])
            return
        try:
            if action == "approve":
                record = approve_request(
                    options["transaction_id"], actor=options["by"], subject=options["subject"]
                )
                self.stdout.write(f"approved: issued {record.subject} serial {record.serial}")
            else:
                request = reject_request(
                    options["transaction_id"],
                    actor=options["by"],
                    subject=options["subject"],
                    reason=options["reason"],
                )
                self.stdout.write(f"rejected: {request.subject}")
        except ScepAdminError as exc:
            raise CommandError(str(exc)) from None

    def _list(self, *, show_all: bool) -> None:
        requests = ScepRequest.objects.order_by("created_at") if show_all else pending_requests()
        requests = requests.select_related("challenge", "renewal_of")
        if not requests:
            self.stdout.write("no pending SCEP requests" if not show_all else "no SCEP requests")
            return
        for request in requests:
            enrollment = scep_request_enrollment(request)
            enrollment = enrollment.name if enrollment is not None else "-"
            renews = f" renews {request.renewal_of.serial}" if request.renewal_of else ""
            self.stdout.write(
                f"{request.transaction_id}  {request.status:8}  {request.message_type:10}  "
                f"{request.created_at:%Y-%m-%d %H:%M}  {request.subject}  "
                f"enrollment={enrollment}{renews}"
            )
