from django.apps import AppConfig


class CertsConfig(AppConfig):
    name = "certs"
