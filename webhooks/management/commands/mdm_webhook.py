"""`mdm_webhook add|list|remove|deliveries|retry|ping`: webhooks in MicroMDM's event format."""

from django.core.management.base import BaseCommand, CommandError

from webhooks.models import TOPICS, Delivery, Webhook
from webhooks.registry import (
    WebhookError,
    create_webhook,
    delete_webhook,
    ping,
    retry_failed,
    with_counts,
)

ACTOR = "mdm_webhook"


def _topics(values: list[str] | None) -> list[str]:
    """--events a,b --events c -> [a, b, c]."""
    return [topic.strip() for value in values or [] for topic in value.split(",") if topic.strip()]


class Command(BaseCommand):
    help = (
        "Webhooks: `add URL [--events T,...] [--secret S]` (prints the secret once if it is "
        "generated); `list`; `remove ID`; `deliveries [ID] [--failed]`; `retry ID`; `ping ID`. "
        "Topics: " + ", ".join(TOPICS)
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="register a webhook URL")
        add.add_argument("url")
        add.add_argument(
            "--events",
            action="append",
            metavar="TOPIC[,TOPIC]",
            help="topics to send (default: every topic)",
        )
        add.add_argument("--secret", default="", help="HMAC key (default: generated, printed)")
        add.add_argument("--description", default="")
        sub.add_parser("list", help="the webhooks, with what waits and what was given up")
        remove = sub.add_parser("remove", help="remove a webhook and its delivery log")
        remove.add_argument("webhook", type=int, metavar="ID")
        log = sub.add_parser("deliveries", help="the delivery log, newest first")
        log.add_argument("webhook", type=int, nargs="?", metavar="ID")
        log.add_argument("--failed", action="store_true", help="only the given-up deliveries")
        log.add_argument("--limit", type=int, default=50)
        retry = sub.add_parser("retry", help="send the given-up deliveries again")
        retry.add_argument("webhook", type=int, metavar="ID")
        pinged = sub.add_parser("ping", help="queue a portal.ping event for one webhook")
        pinged.add_argument("webhook", type=int, metavar="ID")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except WebhookError as exc:
            raise CommandError(str(exc)) from None

    def _webhook(self, pk: int) -> Webhook:
        webhook = Webhook.objects.filter(pk=pk).first()
        if webhook is None:
            raise CommandError(f"no webhook {pk}")
        return webhook

    def _add(self, options) -> None:
        webhook, secret = create_webhook(
            options["url"],
            events=_topics(options["events"]),
            secret=options["secret"],
            description=options["description"],
            actor=ACTOR,
        )
        self.stdout.write(f"webhook {webhook.pk} added: {webhook.url}")
        self.stdout.write(f"events: {', '.join(webhook.events) or 'all'}")
        if not options["secret"]:
            self.stdout.write(f"secret (shown once): {secret}")

    def _list(self, options) -> None:
        webhooks = with_counts()
        if not webhooks:
            self.stdout.write("no webhooks")
        for webhook in webhooks:
            state = "on" if webhook.active else "off"
            topics = ",".join(webhook.events) or "all"
            self.stdout.write(
                f"{webhook.pk:>4}  {webhook.url}  {state}  events={topics}"
                f"  waiting={webhook.pending}  given_up={webhook.failed}"
            )

    def _remove(self, options) -> None:
        webhook = self._webhook(options["webhook"])
        delete_webhook(webhook, actor=ACTOR)
        self.stdout.write(f"webhook {options['webhook']} removed: {webhook.url}")

    def _deliveries(self, options) -> None:
        log = Delivery.objects.select_related("event", "webhook").order_by("-id")
        if options["webhook"] is not None:
            log = log.filter(webhook=self._webhook(options["webhook"]))
        if options["failed"]:
            log = log.filter(state=Delivery.State.FAILED)
        rows = list(log[: options["limit"]])
        if not rows:
            self.stdout.write("no deliveries")
        for row in rows:
            status = row.last_status if row.last_status is not None else "-"
            self.stdout.write(
                f"{row.created_at:%Y-%m-%d %H:%M:%S}  webhook={row.webhook_id}  "
                f"{row.event.topic:28} {row.event.udid or '-':36}  {row.state:9} "
                f"attempts={row.attempts} status={status}  {row.last_error}".rstrip()
            )

    def _retry(self, options) -> None:
        count = retry_failed(self._webhook(options["webhook"]), actor=ACTOR)
        self.stdout.write(f"{count} given-up deliveries will be sent again")

    def _ping(self, options) -> None:
        ping(self._webhook(options["webhook"]), actor=ACTOR)
        self.stdout.write("portal.ping queued")
