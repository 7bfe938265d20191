"""The command pages: the command form (/commands/new/), every command with its progress
(/commands/), and one command (/commands/<uuid>/) whose progress updates while you watch.

Views are thin: targets come from commands.targets, forms from commands.forms (InstallProfile's
from enrollment.command_forms), queuing and canceling from commands.queue, progress from
commands.progress; what a role may send is commands.forms.required_role.
"""

import plistlib
from urllib.parse import urlencode

import django_filters
import django_tables2 as tables
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from devices.models import DeviceGroup
from enrollment.command_forms import InstallProfileForm
from enrollment.models import Profile
from mdm_portal.audit import client_address
from mdm_portal.listing import CreatedBetween, paginate
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER, has_role, role_required

from .catalog import DEFINITIONS
from .display import command_text, error_lines, result_text
from .forms import COMMON_FORMS, OWN_FORM_ONLY, CommandForm, RawForm, required_role
from .models import Command, Status
from .progress import LABELS, STATUS_ORDER, device_rows, progress_of
from .queue import cancel_queued
from .targets import TargetError, resolve_targets

POLL_SECONDS = 3

FORMS: dict[str, type[CommandForm]] = {**COMMON_FORMS, "InstallProfile": InstallProfileForm}
# The chooser of /commands/new/, by what a person wants to do.
CHOOSER = (
    ("Inventory", ("DeviceInformation", "ProfileList", "InstalledApplicationList", "SecurityInfo")),
    (
        "The device",
        ("DeviceLock", "RestartDevice", "ShutDownDevice", "EnableLostMode", "DisableLostMode"),
    ),
    (
        "Profiles, apps, settings",
        ("InstallProfile", "RemoveProfile", "InstallApplication", "Settings"),
    ),
    ("Administrators", ("EraseDevice", "ClearPasscode")),
)


# --- the command form -------------------------------------------------------------------------


def _form_class(request_type: str, mode: str) -> type[CommandForm]:
    if mode == "raw":
        return RawForm
    if request_type in FORMS and (mode != "advanced" or request_type in OWN_FORM_ONLY):
        return FORMS[request_type]
    return CommandForm  # the advanced form: every key of the catalog's definition


def _chooser(user, query: str) -> list[tuple[str, list[dict]]]:
    sections = []
    for heading, types in CHOOSER:
        entries = [
            {
                "type": request_type,
                "title": FORMS[request_type].title,
                "description": FORMS[request_type].description,
                "danger": FORMS[request_type].danger,
                "url": "?" + "&".join(filter(None, (query, urlencode({"type": request_type})))),
            }
            for request_type in types
            if has_role(user, required_role(request_type))
        ]
        if entries:
            sections.append((heading, entries))
    return sections


@role_required(OPERATOR)
def new_command(request):
    """The command form. Targets and the RequestType come as query parameters (see targets.py);
    a POST goes to the same URL, queues through the form, and redirects to the command."""
    params = request.GET
    request_type = params.get("type", "").strip()
    mode = params.get("form", "")
    raw = mode == "raw"
    if (request_type or raw) and not has_role(request.user, required_role(request_type, raw)):
        raise PermissionDenied(
            "raw commands need the admin role" if raw else f"{request_type} needs the admin role"
        )
    context = {"title": "New command", "request_type": request_type, "mode": mode}
    problem = ""
    try:
        targets = resolve_targets(params)
    except TargetError as exc:
        targets, problem = None, str(exc)
    if request_type and not raw and request_type not in DEFINITIONS:
        problem = f"unknown RequestType {request_type!r}: choose one from the list"
        request_type = ""
    form = None
    if targets is not None and (request_type or raw):
        form_class = _form_class(request_type, mode)
        data = (request.POST, request.FILES) if request.method == "POST" else (None, None)
        form = form_class(*data, targets=targets, request_type=request_type, page=params)
        if request.method == "POST" and form.is_valid():
            command = form.queue(user=request.user, address=client_address(request))
            if command is not None:
                messages.success(
                    request,
                    f"{command.request_type} queued for {command.device_count} device(s).",
                )
                return redirect("command-detail", uuid=command.uuid)
    elif request.method == "POST":
        problem = problem or "name the devices and the command before sending it"
    query = targets.query if targets is not None else ""
    context.update(
        targets=targets,
        problem=problem,
        form=form,
        query=query,
        chooser=_chooser(request.user, query),
        catalog=sorted(DEFINITIONS),
        groups=DeviceGroup.objects.order_by("name")[:500],
        advanced_offered=request_type in FORMS and request_type not in OWN_FORM_ONLY,
        raw_offered=has_role(request.user, ADMIN) and request_type != "EraseDevice",
        target_params=[
            (key, value) for key in ("device", "filter", "group") for value in params.getlist(key)
        ],
    )
    status = 400 if request.method == "POST" else 200
    return render(request, "commands/new.html", context, status=status)


# --- every command ------------------------------------------------------------------------------


class CommandFilter(CreatedBetween):
    request_type = django_filters.ChoiceFilter(
        label="RequestType",
        choices=[(name, name) for name in sorted(DEFINITIONS)],
        empty_label="any",
    )
    queued_by = django_filters.CharFilter(label="Who", lookup_expr="icontains")

    class Meta:
        model = Command
        fields = ["request_type", "queued_by", "since", "until"]


def progress_bar(progress) -> str:
    return render_to_string("commands/_bar.html", {"progress": progress})


class CommandTable(tables.Table):
    created_at = tables.DateTimeColumn(
        verbose_name="When", format="Y-m-d H:i", attrs={"td": {"class": "nowrap"}}
    )
    request_type = tables.Column(verbose_name="Command", linkify=False)
    queued_by = tables.Column(verbose_name="Who")
    device_count = tables.Column(
        verbose_name="Devices", attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )
    progress = tables.Column(verbose_name="Progress", empty_values=(), orderable=False)

    class Meta:
        model = Command
        fields = ("created_at", "request_type", "queued_by", "device_count", "progress")
        order_by = "-created_at"
        empty_text = "No command matches."

    def render_request_type(self, value, record):
        raw = format_html(' <span class="badge warning">raw</span>') if record.raw else ""
        return format_html('<a href="/commands/{}/">{}</a>{}', record.uuid, value, raw)

    def render_progress(self, record):
        return progress_bar(self.progress[record.pk])


@role_required(VIEWER)
def command_list(request):
    """Every command, newest first, each with its devices counted per status (two GROUP BY
    queries for the page); the table refreshes itself while a command on it is waiting."""
    commands = CommandFilter(request.GET, queryset=Command.objects.all())
    table = CommandTable(commands.qs)
    paginate(table, request)
    table.progress = progress_of(row.record for row in table.page.object_list)
    waiting = any(progress.waiting for progress in table.progress.values())
    context = {"title": "Commands", "filter": commands, "table": table, "waiting": waiting}
    template = "commands/_list_live.html" if request.htmx else "commands/list.html"
    return render(request, template, context)


# --- one command --------------------------------------------------------------------------------


NOWRAP = {"td": {"class": "nowrap"}}


class DeviceRowTable(tables.Table):
    """A command's devices (rows from commands.progress.device_rows)."""

    # Each sort ends on the UDID: rows that tie keep one order from page to page.
    name = tables.Column(verbose_name="Device", order_by=("name", "udid"))
    udid = tables.Column(
        verbose_name="UDID",
        orderable=False,
        attrs={"td": {"class": "mono small col-udid"}, "th": {"class": "col-udid"}},
    )
    row_status = tables.Column(verbose_name="Status", order_by=("row_status", "name", "udid"))
    sent = tables.DateTimeColumn(
        verbose_name="Sent", format="Y-m-d H:i", order_by=("sent", "udid"), attrs=NOWRAP
    )
    answered = tables.DateTimeColumn(
        verbose_name="Answered", format="Y-m-d H:i", order_by=("answered", "udid"), attrs=NOWRAP
    )
    answer = tables.Column(verbose_name="Result", empty_values=(), orderable=False)

    class Meta:
        attrs = {"class": "devices"}
        empty_text = "No device in this state."

    def render_name(self, value, record):
        return format_html('<a href="/devices/{}/">{}</a>', record["udid"], value or record["udid"])

    def render_row_status(self, value):
        return format_html('<span class="badge {}">{}</span>', value, LABELS.get(value, value))

    def render_answer(self, record):
        answer = record.get("answer")
        result = plistlib.loads(bytes(answer)) if answer else None
        return render_to_string(
            "commands/_result.html",
            {
                "text": result_text(result),
                "errors": error_lines(record.get("errors")),
                "row_id": record["udid"],
            },
        )


def _library_profile(command: Command) -> dict | None:
    """The library profile an InstallProfile or RemoveProfile was queued for, if any."""
    try:
        identifier = command.profile_link.identifier
    except ObjectDoesNotExist:
        return None
    profile = Profile.objects.filter(identifier=identifier).only("pk").first()
    return {"identifier": identifier, "url": f"/profiles/{profile.pk}/" if profile else ""}


@role_required(VIEWER)
def command_detail(request, uuid: str):
    """One command: its payload (secrets masked), its progress and devices per status, and
    for operators the cancel of what is still queued. An htmx request gets the live part."""
    command = get_object_or_404(Command, uuid=uuid)
    progress = progress_of([command])[command.pk]
    status = request.GET.get("status", "")
    status = status if status in Status.values else ""
    table = DeviceRowTable(device_rows(command, status))
    paginate(table, request)
    context = {
        "title": f"{command.request_type} {command.uuid}",
        "command": command,
        "progress": progress,
        "table": table,
        "status": status,
        "statuses": [(s.value, LABELS[s], progress.counts.get(s, 0)) for s in STATUS_ORDER],
        "poll_seconds": POLL_SECONDS,
        "live_url": f"/commands/{command.uuid}/?{request.GET.urlencode()}",
    }
    context["can_cancel"] = has_role(request.user, OPERATOR)
    if request.htmx:
        return render(request, "commands/_live.html", context)
    context.update(
        payload=command_text(command.command_dict()),
        library_profile=_library_profile(command),
    )
    return render(request, "commands/detail.html", context)


@require_POST
@role_required(OPERATOR)
def cancel_command(request, uuid: str):
    """Cancel the command's rows not yet delivered (POST, with the confirmation ticked)."""
    command = get_object_or_404(Command, uuid=uuid)
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to cancel; nothing was canceled.")
        response = command_detail(request, uuid)
        response.status_code = 400
        return response
    count = cancel_queued(command, by=request.user, address=client_address(request))
    messages.success(request, f"Canceled {count} device(s) that had not received the command.")
    return redirect("command-detail", uuid=command.uuid)
