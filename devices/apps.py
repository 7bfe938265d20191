from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"

    def ready(self) -> None:
        from . import identities, receivers

        identities.register()
        receivers.connect()
