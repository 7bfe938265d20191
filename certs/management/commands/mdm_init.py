import secrets

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from certs.ca import PROFILE_SIGNING, ensure_ca, ensure_server_identity
from certs.server_tls import chain_file, ensure_server_tls, public_host
from mdm_portal.audit import audit
from mdm_portal.encryption import EncryptedBinaryField
from mdm_portal.roles import ADMIN, set_role


class Command(BaseCommand):
    help = (
        "Create the portal's key material once: the device-identity CA, the profile-signing "
        "identity and, for an https MDM_PUBLIC_URL without MDM_TLS_CERT_FILE, a server-TLS CA "
        "and a certificate for its host, renewed when close to expiry (idempotent). "
        "Optionally create a demo admin, or re-encrypt every stored secret with the newest "
        "MDM_SECRETS_KEY."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-admin",
            metavar="USERNAME",
            help="also create this superuser (if missing) with a random password, printed once",
        )
        parser.add_argument(
            "--rotate-secrets",
            action="store_true",
            help="re-encrypt stored secrets with the first key of MDM_SECRETS_KEY",
        )

    def handle(self, *args, **options):
        ca, created = ensure_ca(actor="mdm_init")
        state = "created" if created else "already present"
        self.stdout.write(f"device-identity CA {state}: {ca.name}")
        self.stdout.write(f"  sha256 {ca.sha256}, valid until {ca.not_after:%Y-%m-%d}")
        signing = ensure_server_identity(PROFILE_SIGNING)
        self.stdout.write(f"profile-signing certificate valid until {signing.not_after:%Y-%m-%d}")
        self._server_tls()
        self.stdout.write(f"data folder: {settings.DATA_DIR}")
        if options["demo_admin"]:
            self._demo_admin(options["demo_admin"])
        if options["rotate_secrets"]:
            self.stdout.write(f"re-encrypted {self._rotate_secrets()} secret(s)")

    def _server_tls(self) -> None:
        state, identity = ensure_server_tls(actor="mdm_init")
        if state == "file":
            self.stdout.write(f"server TLS certificate: MDM_TLS_CERT_FILE ({chain_file()})")
        elif state == "http":
            self.stdout.write("server TLS certificate: none (MDM_PUBLIC_URL is not https)")
        else:
            self.stdout.write(
                f"server TLS certificate for {public_host()} {state}, valid until "
                f"{identity.not_after:%Y-%m-%d}, from the portal's own server-TLS CA "
                "(private: enrollment profiles carry it; `mdm_tls show`)"
            )

    def _demo_admin(self, username: str) -> None:
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(f"admin user {username!r} already exists (password unchanged)")
            return
        password = secrets.token_urlsafe(12)
        user = users.objects.create_superuser(username=username, email="", password=password)
        set_role(user, ADMIN)
        audit("user.created", actor="mdm_init", target=username, superuser=True, role=ADMIN)
        self.stdout.write(f"admin user created: {username} / {password}")

    def _rotate_secrets(self) -> int:
        count = 0
        with transaction.atomic():
            for model in apps.get_models():
                fields = [f for f in model._meta.fields if isinstance(f, EncryptedBinaryField)]
                for field in fields:
                    for pk, value in model.objects.exclude(**{field.name: None}).values_list(
                        "pk", field.name
                    ):
                        # Saving the plaintext encrypts it again with the newest key.
                        model.objects.filter(pk=pk).update(**{field.name: value})
                        count += 1
        audit("secrets.rotated", actor="mdm_init", count=count)
        return count
