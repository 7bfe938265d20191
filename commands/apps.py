from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "commands"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
