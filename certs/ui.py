"""The Certificates pages: the push certificate and its renewal, the CAs and every certificate's
expiry, device identities close to expiry, SCEP requests waiting for approval.

Every role reads; only an admin changes anything (role_required(ADMIN) on every POST, and the
templates show no form to the others). Views are thin: they call certs.pushcert,
certs.pushcert_csr and certs.scep_approval, as `mdm_pushcert` and `mdm_scep` do, and the
audit entries those write carry the person and their address. No private key, challenge or
anything of the vendor key is ever rendered.
"""

import base64
import hmac
import json
import secrets
import time

import django_tables2 as tables
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST
from django_tables2.paginators import LazyPaginator

from devices.identities import identities_due_for_renewal
from devices.topics import devices_on_other_topic
from enrollment.links import scep_request_enrollment
from enrollment.renewal import renewal_pending
from mdm_portal.audit import client_address
from mdm_portal.encryption import decrypt, encrypt
from mdm_portal.roles import ADMIN, VIEWER, role_required

from . import pushcert, pushcert_csr
from .expiry import certificate_inventory, expiry_entry, warning_days
from .models import CertificateAuthority, PushCertificateRequest, ScepRequest
from .scep_approval import (
    ScepAdminError,
    approve_request,
    decided_requests,
    pending_requests,
    reject_request,
)
from .ui_forms import (
    UPLOAD_FORMS,
    AppleCertificateForm,
    CsrForm,
    ForceImportForm,
    PemUploadForm,
    Pkcs12UploadForm,
    RejectForm,
    SignCsrForm,
)
from .ui_tables import DecidedTable, IdentityTable, InventoryTable

PAGE_SIZE = 50
RECENT_DECISIONS = 15
PEM = "application/x-pem-file"


def _attachment(content: bytes | str, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- /certificates/: the overview -----------------------------------------------------------


def _push_status(now) -> dict:
    """The active push certificate (or None) and its expiry entry, for both pages."""
    status = pushcert.push_certificate_status(now)
    entry = None
    if status is not None:
        entry = expiry_entry(
            "push", status["topic"], status["subject"], status["not_after"], now, warning_days()
        )
    return {"push": status, "push_expiry": entry}


def _pending_rows():
    """Pending SCEP requests with the enrollment each is for (one page: a handful)."""
    rows = pending_requests().select_related("challenge", "renewal_of")[:PAGE_SIZE]
    return [(request, scep_request_enrollment(request)) for request in rows]


@require_GET
@role_required(VIEWER)
def certificates(request):
    now = timezone.now()
    thresholds = warning_days()
    identities = IdentityTable(
        identities_due_for_renewal(thresholds[0], now=now),
        now=now,
        thresholds=thresholds,
        prefix="identity-",
    )
    tables.RequestConfig(
        request, paginate={"paginator_class": LazyPaginator, "per_page": PAGE_SIZE}
    ).configure(identities)
    identities.renewing = renewal_pending(
        row.record.device_id for row in identities.page.object_list
    )
    inventory = certificate_inventory(now, per_device=False)
    attention = [e for e in inventory if e["severity"] != "ok"]
    authorities = CertificateAuthority.objects.filter(active=True).defer("private_key_pem")
    context = {
        "title": "Certificates",
        **_push_status(now),
        "authorities": [
            (ca, expiry_entry("ca", ca.name, "", ca.not_after, now, thresholds))
            for ca in authorities.order_by("-created_at")
        ],
        "inventory": InventoryTable(inventory),
        "attention": attention,
        "attention_level": "critical"
        if any(e["severity"] in ("critical", "expired", "error") for e in attention)
        else "warning",
        "identities": identities,
        "identity_days": thresholds[0],
        "pending": _pending_rows(),
        "pending_total": pending_requests().count(),
        "decided": DecidedTable(decided_requests()[:RECENT_DECISIONS]),
    }
    return render(request, "certs/certificates.html", context)


@require_GET
@role_required(VIEWER)
def ca_certificate(request, pk: int):
    """The CA certificate (PEM) to install where devices or proxies must trust it."""
    authority = get_object_or_404(
        CertificateAuthority.objects.defer("private_key_pem"), pk=pk, active=True
    )
    name = slugify(authority.name) or "ca"
    return _attachment(authority.certificate_pem, f"{name}.pem", PEM)


# --- SCEP approval ------------------------------------------------------------------------------


def _scep_request(pk: int) -> ScepRequest:
    return get_object_or_404(ScepRequest.objects.only("transaction_id", "subject"), pk=pk)


def _decide(request, pk: int, decide, *, verb: str, done, **options):
    """Approve or reject one request through certs.scep_approval, audited with the person and
    their address; a refusal (already decided, unknown) is a message, not an error page."""
    scep = _scep_request(pk)
    try:
        result = decide(
            scep.transaction_id,
            subject=scep.subject,
            actor=request.user,
            address=client_address(request),
            **options,
        )
    except ScepAdminError as exc:
        messages.error(request, f"Not {verb}: {exc}")
    else:
        messages.success(request, done(result))
    return redirect("/certificates/#scep")


@require_POST
@role_required(ADMIN)
def scep_approve(request, pk: int):
    return _decide(
        request,
        pk,
        approve_request,
        verb="approved",
        done=lambda record: (
            f"Approved: certificate {record.serial} issued to {record.subject}; the device "
            "receives it at its next poll."
        ),
    )


@require_POST
@role_required(ADMIN)
def scep_reject(request, pk: int):
    form = RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not rejected: {form.errors['reason'][0]}")
        return redirect("/certificates/#scep")
    return _decide(
        request,
        pk,
        reject_request,
        verb="rejected",
        done=lambda scep: f"Rejected: {scep.subject}; the device's next poll gets a failure.",
        reason=form.cleaned_data["reason"],
    )


# --- /certificates/push/: the push certificate and its renewal ----------------------------------


# What failed, and where its form is, for the banner above a page shown again with errors.
FAILURES = {
    "p12": ("the PKCS#12 file was not imported", "form-p12"),
    "pem": ("the certificate was not imported", "form-pem"),
    "apple": ("Apple's certificate was not imported", "step-4"),
    "csr": ("no key or CSR was made", "step-1"),
    "sign": ("the CSR was not signed", "step-2"),
}


def _push_page(request, *, status: int = 200, refused=None, **forms):
    failed = next((name for name, form in forms.items() if form.errors), None)
    context = {
        "title": "Push certificate",
        **_push_status(timezone.now()),
        "requests": pushcert_csr.pending_push_requests(),
        "apple_portal": pushcert_csr.APPLE_PUSH_PORTAL,
        "warn_days": warning_days()[0],
        "fresh": request.GET.get("csr", ""),
        "refused": refused,
        "failed": dict(zip(("what", "anchor"), FAILURES[failed], strict=True)) if failed else None,
        "p12_form": forms.get("p12") or Pkcs12UploadForm(prefix="p12"),
        "pem_form": forms.get("pem") or PemUploadForm(prefix="pem"),
        "apple_form": forms.get("apple") or AppleCertificateForm(prefix="apple"),
        "csr_form": forms.get("csr") or CsrForm(prefix="csr"),
        "sign_form": forms.get("sign") or SignCsrForm(prefix="sign"),
    }
    return render(request, "certs/push.html", context, status=status)


@require_GET
@role_required(VIEWER)
def push(request):
    return _push_page(request)


# An import refused for its topic waits here for its confirmation: encrypted with
# MDM_SECRETS_KEY (it may hold a private key), in this person's session, for a few minutes.
STASH = "certs.ui.import_awaiting_confirmation"
STASH_SECONDS = 600


def _stash_import(request, arguments: dict, summary: dict) -> str:
    """Keep a refused import's arguments for its confirmation; `summary` (topics and device
    count, nothing secret) lets the confirmation be shown again."""
    token = secrets.token_urlsafe(24)
    plain = {
        name: base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for name, value in arguments.items()
    }
    request.session[STASH] = {
        "token": token,
        "expires": time.time() + STASH_SECONDS,
        "binary": [name for name, value in arguments.items() if isinstance(value, bytes)],
        "sealed": encrypt(json.dumps(plain).encode()).decode(),
        "summary": summary,
    }
    return token


def _take_stash(request, token: str) -> dict | None:
    """The stashed import's arguments, once (the stash is gone afterwards), or None."""
    stash = request.session.pop(STASH, None)
    if not stash or stash["expires"] < time.time():
        return None
    if not hmac.compare_digest(stash["token"], token):
        return None
    plain = json.loads(decrypt(stash["sealed"].encode()))
    for name in stash["binary"]:
        plain[name] = base64.b64decode(plain[name])
    return plain


def _refusal(summary: dict, form: ForceImportForm) -> dict:
    return {**summary, "form": form, "minutes": STASH_SECONDS // 60}


def _imported(request, result) -> None:
    first, *rest = pushcert.describe_import(result)
    messages.success(request, f"{first[:1].upper()}{first[1:]}: " + "; ".join(rest) + ".")
    if result.orphaned:
        warning = pushcert.orphan_warning(result.orphaned, result.replaced_demo)
        messages.warning(request, f"{warning[:1].upper()}{warning[1:]}.")


@require_POST
@role_required(ADMIN)
def push_import(request):
    source = request.POST.get("source", "")
    if source not in UPLOAD_FORMS:
        raise Http404("unknown upload form")
    form = UPLOAD_FORMS[source](request.POST, request.FILES, prefix=source)
    if not form.is_valid():
        return _push_page(request, status=400, **{source: form})
    arguments = form.import_arguments()
    try:
        result = pushcert.import_files(
            **arguments,
            orphaned_devices=devices_on_other_topic,
            actor=request.user,
            address=client_address(request),
        )
    except pushcert.TopicChangeRefused as refusal:
        summary = {
            "old_topic": refusal.old_topic,
            "new_topic": refusal.new_topic,
            "orphaned": refusal.orphaned,
        }
        token = _stash_import(request, arguments, summary)
        return _push_page(
            request,
            status=409,
            refused=_refusal(summary, ForceImportForm(initial={"stash": token})),
        )
    except pushcert.PushCertError as exc:
        form.show_refusal(exc)
        return _push_page(request, status=400, **{source: form})
    _imported(request, result)
    return redirect("/certificates/push/")


@require_POST
@role_required(ADMIN)
def push_import_confirm(request):
    """Replace the push certificate anyway (force=True), or drop the refused upload."""
    if "cancel" in request.POST:
        request.session.pop(STASH, None)
        messages.info(request, "Nothing imported: the push certificate is unchanged.")
        return redirect("/certificates/push/")
    form = ForceImportForm(request.POST)
    if not form.is_valid():
        stash = request.session.get(STASH)
        if stash is None or not hmac.compare_digest(stash["token"], request.POST.get("stash", "")):
            messages.error(request, "That upload is no longer waiting: upload it again.")
            return redirect("/certificates/push/")
        return _push_page(request, status=400, refused=_refusal(stash["summary"], form))
    arguments = _take_stash(request, form.cleaned_data["stash"])
    if arguments is None:
        messages.error(request, "That upload is no longer waiting (it expired): upload it again.")
        return redirect("/certificates/push/")
    try:
        result = pushcert.import_files(
            **arguments,
            orphaned_devices=devices_on_other_topic,
            force=True,
            actor=request.user,
            address=client_address(request),
        )
    except pushcert.PushCertError as exc:
        messages.error(request, f"Not imported: {exc}")
        return redirect("/certificates/push/")
    _imported(request, result)
    return redirect("/certificates/push/")


@require_POST
@role_required(ADMIN)
def push_csr_create(request):
    form = CsrForm(request.POST, prefix="csr")
    if form.is_valid():
        try:
            created = pushcert_csr.create_push_csr(
                common_name=form.cleaned_data["common_name"] or None,
                country=form.cleaned_data["country"] or None,
                email=form.cleaned_data["email"] or None,
                actor=request.user,
                address=client_address(request),
            )
        except pushcert.PushCertError as exc:
            form.show_refusal(exc)
        else:
            messages.success(
                request,
                "Step 1 done: the portal made a key (it stays here, encrypted) and its CSR. "
                "Download the CSR, then sign it (step 2).",
            )
            return redirect(f"/certificates/push/?csr={created.pk}#step-2")
    return _push_page(request, status=400, csr=form)


@require_GET
@role_required(VIEWER)
def push_csr_download(request, pk: int):
    """A CSR of the portal (public: a CSR holds the public key only)."""
    csr = get_object_or_404(PushCertificateRequest.objects.only("csr_pem", "created_at"), pk=pk)
    return _attachment(csr.csr_pem, f"push-csr-{csr.created_at:%Y%m%d-%H%M}.pem", PEM)


@require_POST
@role_required(ADMIN)
def push_csr_sign(request):
    """Step 2: the PushCertWebRequest file, as a download. The vendor key is read from the
    upload, used for this one signature and dropped: it is never stored or shown."""
    form = SignCsrForm(request.POST, request.FILES, prefix="sign")
    if form.is_valid():
        data = form.cleaned_data
        try:
            content = pushcert_csr.sign_push_csr(
                form.csr_pem(),
                data["vendor_cert"],
                data["vendor_key"],
                chain_pem=data["chain"],
                digest=data["digest"],
                vendor_key_password=data["vendor_key_password"] or None,
                actor=request.user,
                address=client_address(request),
            )
        except pushcert.PushCertError as exc:
            form.show_refusal(exc)
        else:
            return _attachment(content, "PushCertWebRequest.txt", "text/plain; charset=us-ascii")
    return _push_page(request, status=400, sign=form)
