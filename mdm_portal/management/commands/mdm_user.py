"""`mdm_user create|set-role|list`: staff accounts and their roles (viewer, operator, admin)."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from mdm_portal.audit import audit
from mdm_portal.roles import ROLES, role_of, set_role


class Command(BaseCommand):
    help = "Create staff users, change their role, list them. Roles: " + ", ".join(ROLES)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        create = sub.add_parser("create", help="create a user with a role")
        create.add_argument("username")
        create.add_argument("--role", required=True, choices=ROLES)
        create.add_argument("--password", help="the password (default: generated and printed)")
        create.add_argument("--email", default="")
        change = sub.add_parser("set-role", help="change a user's role")
        change.add_argument("username")
        change.add_argument("role", choices=ROLES)
        sub.add_parser("list", help="every user with its role")

    def handle(self, *args, **options):
        {"create": self._create, "set-role": self._set_role, "list": self._list}[
            options["subcommand"]
        ](options)

    def _create(self, options) -> None:
        users = get_user_model()
        username = options["username"]
        if users.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists (use set-role to change it)")
        password = options["password"] or secrets.token_urlsafe(12)
        with transaction.atomic():
            user = users.objects.create_user(username, options["email"], password)
            set_role(user, options["role"])
            audit("user.created", actor="mdm_user", target=username, role=options["role"])
        self.stdout.write(f"user {username} created with role {options['role']}")
        if not options["password"]:
            self.stdout.write(f"password: {password}")

    def _set_role(self, options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"unknown user {options['username']!r}")
        with transaction.atomic():
            set_role(user, options["role"])
            audit("user.role_set", actor="mdm_user", target=user.username, role=options["role"])
        self.stdout.write(f"{user.username} now has the {options['role']} role")

    def _list(self, options) -> None:
        for user in get_user_model().objects.order_by("username"):
            role = role_of(user) or "-"
            state = "" if user.is_active else "  (inactive)"
            self.stdout.write(f"{user.username:24} {role:9}{state}")
