from django.apps import AppConfig


class MdmPortalConfig(AppConfig):
    name = "mdm_portal"
    verbose_name = "MDM portal"
