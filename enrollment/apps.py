from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    name = "enrollment"

    def ready(self) -> None:
        from . import command_hooks, dep_tokens, receivers

        receivers.connect()
        command_hooks.register()
        dep_tokens.register()  # each ADE server token's expiry joins the expiry inventory
