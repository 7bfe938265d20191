"""`mdm_apitoken create|list|revoke`: API tokens for scripts (`Authorization: Token <key>`)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from mdm_portal.api_tokens import TokenError, create_token, revoke_token
from mdm_portal.models import ApiToken
from mdm_portal.roles import role_of

ACTOR = "mdm_apitoken"


class Command(BaseCommand):
    help = (
        "API tokens: `create --user U [--name N]` prints the key once; `list` shows them; "
        "`revoke ID|PREFIX` revokes one. A token acts as its user, with that user's role."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print its key once")
        create.add_argument("--user", required=True, help="the user the token acts as")
        create.add_argument("--name", default="", help="what the token is for")
        listing = sub.add_parser("list", help="every token (never the keys)")
        listing.add_argument("--user", help="only this user's tokens")
        revoke = sub.add_parser("revoke", help="revoke a token")
        revoke.add_argument("token", help="the token's id or prefix (as `list` shows)")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except TokenError as exc:
            raise CommandError(str(exc)) from None

    def _create(self, options) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"unknown user {options['user']!r} (create it with mdm_user)")
        token, key = create_token(user, options["name"], actor=ACTOR)
        role = role_of(user) or "no role"
        self.stdout.write(f"token {token.pk} {token.name!r} for {user.get_username()} ({role})")
        self.stdout.write(key)
        if role_of(user) is None:
            self.stderr.write("warning: the user has no role: the token can read nothing")

    def _list(self, options) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("id")
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        if not tokens:
            self.stdout.write("no API tokens")
            return
        for token in tokens:
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            self.stdout.write(
                f"{token.pk:>4}  {token.prefix}…  {token.name:20}  "
                f"user={token.user.get_username()}  created={token.created_at:%Y-%m-%d %H:%M}  "
                f"last used={used}  {state}"
            )

    def _revoke(self, options) -> None:
        reference = options["token"]
        match = Q(prefix=reference)
        if reference.isdigit():
            match |= Q(pk=int(reference))
        found = list(ApiToken.objects.filter(match).select_related("user")[:2])
        if not found:
            raise CommandError(f"no token {reference!r}")
        if len(found) > 1:
            raise CommandError(f"{reference!r} names several tokens: use the id")
        token = revoke_token(found[0], actor=ACTOR)
        self.stdout.write(f"revoked: {token.name} ({token.prefix}…)")
