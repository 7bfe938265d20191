from django.apps import AppConfig


class DeclarationsConfig(AppConfig):
    name = "declarations"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
