"""/enrollments/dep/: the DEP servers (one per server token from Apple Business Manager).

Thin views over enrollment.dep_tokens (create a server and its key, the certificate for ABM,
import a token), enrollment.dep_sync (sync, Apple's account, disown) and
enrollment.dep_profiles (auto-assign): the functions `mdm_dep` calls too. Every role reads; an
operator syncs; an admin adds servers, uploads tokens, picks the auto-assign profile and
disowns devices (typed confirmation). The certificate is public: every role downloads it.

"Sync now" follows the command pages' pattern for work that takes a while: it asks a Celery
worker to run the sync (enrollment.tasks.sync_dep_server) and the page then polls, with htmx,
until the server's last sync is newer than the click, and shows its outcome. When the broker
does not take the task, or the person asks to wait for it, the sync runs in the request.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from mdm_portal.audit import actor_name, client_address
from mdm_portal.broker import attempt
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER, has_role, role_required

from ..dep_client import DepError
from ..dep_listing import dep_devices, dep_servers, token_expiry
from ..dep_models import DepServer
from ..dep_profiles import DepProfileError, set_auto_assign
from ..dep_sync import disown_devices, refresh_account, sync_server
from ..dep_tokens import DepTokenError, create_server, import_token, token_certificate_pem
from ..tasks import sync_dep_server
from .common import bound, paginate, submit
from .dep_common import SYNC_POLL_SECONDS, acting_here, results_page, sync_state
from .dep_forms import AssignForm, AutoAssignForm, DisownForm, ServerForm, TokenForm
from .dep_tables import DepDeviceTable, ServerTable

PEM = "application/x-pem-file"


def _server(pk: int) -> DepServer:
    return get_object_or_404(dep_servers(), pk=pk)


def _page(pk: int, **query) -> str:
    url = reverse("dep-server", args=[pk])
    return url + "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else url


@role_required(VIEWER)
def server_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "enrollment/dep/server_list.html",
        {"title": "DEP servers", "table": paginate(request, ServerTable(dep_servers()))},
    )


@role_required(ADMIN)
def server_new(request: HttpRequest) -> HttpResponse:
    form = bound(request, ServerForm)

    def create(data):
        server = create_server(data["name"], actor=request.user, address=client_address(request))
        messages.success(
            request,
            f"Server {server.name} added. Next: download its certificate and upload it to "
            "Apple Business Manager (the steps are below).",
        )
        return redirect("dep-server", pk=server.pk)

    answer, status = submit(form, create, errors=DepTokenError, field="name")
    return answer or render(
        request,
        "enrollment/dep/server_form.html",
        {"title": "Add a DEP server", "form": form},
        status=status,
    )


def _detail(request, server: DepServer, *, status: int = 200, **forms):
    # Rows are selected to assign a profile (operators) or to disown them (admins).
    selectable = has_role(request.user, OPERATOR)
    devices = dep_devices().filter(server=server)
    table = DepDeviceTable(devices, selectable=selectable, show_server=False)
    return render(
        request,
        "enrollment/dep/server_detail.html",
        {
            "title": server.name,
            "server": server,
            "expiry": token_expiry(server),
            "sync": sync_state(server, request.GET.get("syncing")),
            "poll_seconds": SYNC_POLL_SECONDS,
            "profiles": server.profiles.select_related("enrollment").order_by("name"),
            "devices": paginate(request, table),
            "token_form": forms.get("token_form") or TokenForm(),
            # Two forms with a `profile` field on one page: their own ids, so labels find them.
            "auto_assign_form": forms.get("auto_assign_form")
            or AutoAssignForm(server=server, auto_id="auto_%s"),
            "assign_form": AssignForm(server=server, auto_id="assign_%s"),
        },
        status=status,
    )


@require_GET
@role_required(VIEWER)
def server_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _server(pk))


@require_GET
@role_required(VIEWER)
def server_certificate(request: HttpRequest, pk: int) -> HttpResponse:
    """The certificate to upload to ABM (public: ABM encrypts the token to its key)."""
    server = get_object_or_404(DepServer.objects.select_related("key"), pk=pk)
    response = HttpResponse(token_certificate_pem(server), content_type=PEM)
    name = slugify(server.name) or f"server-{server.pk}"
    response["Content-Disposition"] = f'attachment; filename="dep-{name}.pem"'
    response["Cache-Control"] = "no-store"
    return response


@role_required(ADMIN)
def server_token(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload the server token (.p7m); again later to renew it: the server stays. Apple's
    account is read at once, which names the organization and proves the token works."""
    server = _server(pk)
    form = bound(request, TokenForm)
    renewal = server.token_imported_at is not None

    def upload(data):
        address = client_address(request)
        imported = import_token(server, data["file"].read(), actor=request.user, address=address)
        expiry = imported.access_token_expiry
        when = f", valid until {expiry:%Y-%m-%d}" if expiry else ""
        verb = "renewed" if renewal else "imported"
        messages.success(request, f"Server token {verb} for {imported.name}{when}.")
        try:
            refresh_account(imported, actor=request.user)
        except (DepError, DepTokenError) as exc:
            messages.warning(request, f"Apple's account could not be read yet: {exc}")
        return redirect("dep-server", pk=server.pk)

    answer, status = submit(form, upload, errors=DepTokenError, field="file")
    if answer:
        return answer
    if request.method == "POST":  # the error is shown where the form was: the server's page
        return _detail(request, server, status=status, token_form=form)
    return render(
        request,
        "enrollment/dep/token_form.html",
        {"title": f"Upload the token of {server.name}", "server": server, "token_form": form},
    )


def _queue_sync(server: DepServer, actor) -> bool:
    """Ask a worker to sync `server` now; False when the broker did not take it."""
    arguments = (server.pk, actor_name(actor))
    return (
        attempt("DEP sync", lambda: sync_dep_server.apply_async(arguments, retry=False)) is not None
    )


@require_POST
@role_required(OPERATOR)
def server_sync(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(DepServer, pk=pk)
    if server.token_imported_at is None:
        messages.error(request, f"Upload the server token of {server.name} first.")
        return redirect("dep-server", pk=pk)
    started = f"{timezone.now().timestamp():.6f}"
    acting_here(request)
    if request.POST.get("wait") == "1" or not _queue_sync(server, request.user):
        sync_server(server, actor=request.user)
    # The outcome is read from the server record: the same page whoever ran it.
    return redirect(_page(pk, syncing=started) + "#sync")


@require_GET
@role_required(VIEWER)
def server_sync_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The sync banner, polled while the sync runs; once it is done the page reloads."""
    server = get_object_or_404(DepServer, pk=pk)
    state = sync_state(server, request.GET.get("syncing"))
    if state and state["done"]:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # the devices and counts changed: the whole page
        return response
    return render(
        request,
        "enrollment/dep/_sync_banner.html",
        {"server": server, "sync": state, "poll_seconds": SYNC_POLL_SECONDS},
    )


@require_POST
@role_required(ADMIN)
def server_auto_assign(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    form = AutoAssignForm(request.POST, server=server, auto_id="auto_%s")
    if form.is_valid():
        profile = form.cleaned_data["profile"]
        acting_here(request)
        try:
            set_auto_assign(server, profile, actor=request.user)
        except DepProfileError as exc:
            form.add_error("profile", str(exc))
        else:
            if profile is None:
                messages.success(request, f"New devices of {server.name} get no profile.")
            else:
                messages.success(request, f"New devices of {server.name} get {profile.name}.")
            return redirect("dep-server", pk=pk)
    return _detail(request, server, status=400, auto_assign_form=form)


@role_required(ADMIN)
def server_disown(request: HttpRequest, pk: int) -> HttpResponse:
    """Disown devices: a selection (GET, or POSTed from the server's page without `confirm`)
    gets the page that asks, with the count or serial to type; the POST with it disowns
    them and shows Apple's answer for each serial."""
    server = _server(pk)
    back = reverse("dep-server", args=[pk])
    data = request.POST if request.method == "POST" else request.GET
    form = DisownForm(data, server=server)
    asked = request.method == "POST" and "confirm" in data
    if asked and form.is_valid():
        serials = form.cleaned_data["device"]
        acting_here(request)
        try:
            results = disown_devices(server, serials, actor=request.user)
        except (DepError, DepTokenError) as exc:
            form.add_error(None, f"Apple refused or could not be reached: {exc}")
        else:
            return results_page(
                request,
                title=f"Disowned from {server.name}",
                what="Disown",
                results=results,
                back=back,
                server=server,
            )
    form.is_valid()  # read the selection; its errors show on the page
    if not asked:
        form.errors.pop("confirm", None)  # nothing typed yet: not an error
    serials = form.cleaned_data.get("device") or []
    devices = list(dep_devices().filter(server=server, serial_number__in=serials))
    return render(
        request,
        "enrollment/dep/disown.html",
        {
            "title": f"Disown devices from {server.name}?",
            "server": server,
            "form": form,
            "devices": sorted(devices, key=lambda d: serials.index(d.serial_number)),
            "expected": DisownForm.expected(serials) if serials else "",
            "cancel": back,
        },
        status=400 if form.errors else 200,
    )
