"""The InstallProfile command form: a profile from the library, queued through the library so
the command is known as that profile's (enrollment.library.install_now)."""

from django import forms

from commands.forms import CommandForm

from .library import install_now
from .models import Profile


class InstallProfileForm(CommandForm):
    request_type = "InstallProfile"
    title = "Install a profile"
    description = (
        "Send a profile from the library, signed by the portal. To keep it installed wherever "
        "it goes missing, assign it on the Profiles page."
    )
    keys = ()

    def add_fields(self) -> None:
        self.fields["profile"] = forms.ModelChoiceField(
            queryset=Profile.objects.order_by("name"),
            label="Profile from the library",
            empty_label="— choose a profile —",
            help_text="upload profiles on the Profiles page",
        )

    def build_payload(self) -> dict:
        return {}

    def enqueue(self, *, user, address):
        return install_now(
            self.cleaned_data["profile"], self.targets.devices, by=user, address=address
        )

    def field_for_key(self, key: str | None) -> str | None:
        return "profile" if key and key.startswith("Payload") else None
