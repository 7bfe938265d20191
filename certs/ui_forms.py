"""The Certificates page's forms: what a person uploads or types, checked for shape only.

What the files mean (a push certificate, its key, a CSR, the vendor's certificate) is checked
by certs.pushcert and certs.pushcert_csr, whose refusals name the field at fault
(PushCertError.field); `show_refusal` puts each message next to that field.
"""

from django import forms

from .models import PushCertificateRequest
from .pushcert_csr import DEFAULT_SIGNATURE_DIGEST, SIGNATURE_DIGESTS, pending_push_requests

MAX_UPLOAD_BYTES = 256 * 1024  # a certificate, a key or a PKCS#12 file is a few KiB


class UploadField(forms.FileField):
    """A small file (certificate, key, PKCS#12, CSR), read into bytes by clean()."""

    def __init__(self, *, accept: str, **kwargs):
        kwargs.setdefault("widget", forms.FileInput(attrs={"accept": accept}))
        super().__init__(**kwargs)

    def clean(self, data, initial=None) -> bytes | None:
        upload = super().clean(data, initial)
        if not upload:
            return None
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"this file is {upload.size // 1024} KiB: a certificate or key file is a few KiB "
                "(is it the right file?)"
            )
        content = upload.read()
        if not content:
            raise forms.ValidationError("this file is empty")
        return content


def secret_field(label: str, help_text: str = "") -> forms.CharField:
    """A password that is never sent back to the browser, even when the form is shown again."""
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        max_length=1024,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )


class PageForm(forms.Form):
    """Labels without Django's trailing colon, as on the rest of the portal."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class RefusalForm(PageForm):
    """A form that can show a refusal from certs.pushcert next to the field it names."""

    # PushCertError.field -> this form's field (None: the whole form).
    refusal_fields: dict[str, str] = {}

    def show_refusal(self, error) -> None:
        field = self.refusal_fields.get(getattr(error, "field", None) or "")
        self.add_error(field if field in self.fields else None, str(error))


class Pkcs12UploadForm(RefusalForm):
    pkcs12 = UploadField(
        label="PKCS#12 file (.p12, .pfx)",
        accept=".p12,.pfx,application/x-pkcs12",
        help_text="The push certificate and its private key in one file.",
    )
    password = secret_field("Password of the PKCS#12 file")

    refusal_fields = {
        "password": "password",
        "pkcs12": "pkcs12",
        "certificate": "pkcs12",
        "key": "pkcs12",
    }

    def import_arguments(self) -> dict:
        data = self.cleaned_data
        return {"pkcs12_data": data["pkcs12"], "password": data["password"] or None}


class PemUploadForm(RefusalForm):
    certificate = UploadField(
        label="Push certificate (.pem or .cer)",
        accept=".pem,.cer,.crt,.der",
        help_text="The certificate Apple issued, PEM or DER.",
    )
    key = UploadField(
        label="Its private key (.pem or .key)",
        required=False,
        accept=".pem,.key",
        help_text=(
            "Leave empty when the key is in the certificate's PEM file, or when the "
            "certificate answers the portal's own CSR (step 4 below)."
        ),
    )
    password = secret_field("Password of the key", "Only for an encrypted key.")

    refusal_fields = {"certificate": "certificate", "key": "key", "password": "password"}

    def import_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "certificate": data["certificate"],
            "key": data["key"],
            "password": data["password"] or None,
        }


class AppleCertificateForm(RefusalForm):
    """Step 4: Apple's certificate alone; it pairs with the key of the portal's CSR."""

    certificate = UploadField(
        label="The certificate from Apple (.pem)",
        accept=".pem,.cer,.crt,.der",
        help_text="As downloaded from Apple's Push Certificates Portal.",
    )

    refusal_fields = {"certificate": "certificate", "key": "certificate"}

    def import_arguments(self) -> dict:
        return {"certificate": self.cleaned_data["certificate"]}


UPLOAD_FORMS = {"p12": Pkcs12UploadForm, "pem": PemUploadForm, "apple": AppleCertificateForm}


class ForceImportForm(PageForm):
    """The confirmation of an import refused for its topic."""

    stash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    understood = forms.BooleanField(
        label="I understand: every enrolled device stops receiving pushes and must enroll again",
        required=True,
    )


class CsrForm(RefusalForm):
    common_name = forms.CharField(
        label="Common name",
        required=False,
        max_length=64,
        help_text="Shown in Apple's portal; the default names your organization.",
    )
    country = forms.CharField(
        label="Country (two letters)", required=False, max_length=2, min_length=2
    )
    email = forms.EmailField(label="Contact e-mail", required=False, max_length=254)

    refusal_fields = {"country": "country"}


class PushRequestChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: PushCertificateRequest) -> str:
        return f"CSR of {obj.created_at:%Y-%m-%d %H:%M} UTC (key {obj.public_key_sha256[:12]}…)"


class SignCsrForm(RefusalForm):
    request = PushRequestChoice(
        label="The portal's CSR",
        queryset=PushCertificateRequest.objects.none(),
        required=False,
        empty_label="— choose a CSR made in step 1 —",
    )
    csr = UploadField(
        label="…or a CSR file",
        required=False,
        accept=".csr,.pem,.der",
        help_text="A customer's CSR made elsewhere (PEM or DER).",
    )
    vendor_cert = UploadField(
        label="Vendor certificate (mdm.cer)",
        accept=".cer,.pem,.crt,.der",
        help_text="Your MDM CSR signing certificate from developer.apple.com, DER or PEM.",
    )
    vendor_key = UploadField(label="Vendor private key (.pem or .key)", accept=".pem,.key")
    vendor_key_password = secret_field("Password of the vendor key", "Only for an encrypted key.")
    chain = UploadField(
        label="Apple's chain (optional, PEM)",
        required=False,
        accept=".pem,.crt,.cer",
        help_text="Apple's WWDR intermediate (G3) and Apple Inc. Root, which Apple wants after "
        "the vendor certificate.",
    )
    digest = forms.ChoiceField(
        label="Signature digest",
        choices=[(name, name.upper().replace("SHA", "SHA-")) for name in SIGNATURE_DIGESTS],
        initial=DEFAULT_SIGNATURE_DIGEST,
        help_text="SHA-256 is what Apple accepts today; SHA-1 only for a vendor certificate "
        "issued before 2021.",
    )

    refusal_fields = {
        "csr": "csr",
        "vendor_cert": "vendor_cert",
        "vendor_key": "vendor_key",
        "chain": "chain",
        "digest": "digest",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["request"].queryset = pending_push_requests()

    def clean(self):
        data = super().clean()
        chosen, uploaded = data.get("request"), data.get("csr")
        if chosen is not None and uploaded:
            self.add_error("csr", "choose the portal's CSR or upload one, not both")
        elif chosen is None and not uploaded and "csr" not in self.errors:
            self.add_error("request", "choose the portal's CSR, or upload a CSR file below")
        return data

    def csr_pem(self) -> bytes:
        chosen = self.cleaned_data.get("request")
        return chosen.csr_pem.encode() if chosen is not None else self.cleaned_data["csr"]


class RejectForm(PageForm):
    reason = forms.CharField(
        label="Reason (optional)",
        required=False,
        max_length=200,
        help_text="Recorded in the audit log.",
    )
