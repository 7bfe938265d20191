from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    name = "enrollment"

    def ready(self) -> None:
        from . import command_hooks, receivers

        receivers.connect()
        command_hooks.register()
