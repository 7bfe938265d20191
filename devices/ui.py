"""The device pages: the list (`/devices/`: search, filters, sorting, selection, bulk actions,
CSV export) and a device's page (`/devices/<udid>/`: identity, state, inventory, command
history, the commands a person may send, its declarations and their state).

Views are thin: the filter is devices.selection's, group changes enrollment.membership's (the
profile library follows the group), the history commands.history's, what a device may be sent
the catalog's; commands themselves are queued by the command form (`/commands/new/`), which
the selection is handed to.
"""

import csv
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from commands.catalog import Recipient, unavailable_reason
from commands.history import recent_commands
from commands.models import PushAttempt
from declarations.ui.device_section import declarations_section
from enrollment.links import device_enrollment
from enrollment.membership import add_to_group
from enrollment.views import rights_in_words
from mdm_portal.audit import client_address
from mdm_portal.listing import PAGE_SIZE, paginate
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER, has_role, role_required

from .export import csv_rows
from .identities import current_identity
from .inventory_view import inventory_sections
from .models import Device, DeviceGroup
from .selection import (
    DeviceFilter,
    SelectionError,
    devices_matching,
    filter_querystring,
    read_filter,
)
from .tables import LIST_FIELDS, DeviceTable, KeysFirstData, ago, state_badges

HISTORY_STEP = 20
HISTORY_MAX = 500

# The commands offered for a device or a selection: (RequestType, label, role needed).
COMMON_COMMANDS: list[tuple[str, str, str]] = [
    ("DeviceInformation", "Refresh device information", OPERATOR),
    ("SecurityInfo", "Security information", OPERATOR),
    ("ProfileList", "List profiles", OPERATOR),
    ("InstalledApplicationList", "List apps", OPERATOR),
    ("CertificateList", "List certificates", OPERATOR),
    ("Restrictions", "List restrictions", OPERATOR),
    ("DeviceLock", "Lock…", OPERATOR),
    ("RestartDevice", "Restart…", OPERATOR),
    ("ShutDownDevice", "Shut down…", OPERATOR),
    ("InstallProfile", "Install profile…", OPERATOR),
    ("RemoveProfile", "Remove profile…", OPERATOR),
    ("InstallApplication", "Install app…", OPERATOR),
    ("Settings", "Settings…", OPERATOR),
    ("EnableLostMode", "Enable lost mode…", OPERATOR),
    ("DisableLostMode", "Disable lost mode", OPERATOR),
    ("EraseDevice", "Erase…", ADMIN),
    ("ClearPasscode", "Clear passcode…", ADMIN),
]
DESTRUCTIVE = {"EraseDevice", "ClearPasscode", "ShutDownDevice", "RestartDevice"}


def command_url(request_type: str | None = None, **targets) -> str:
    """A link to the command form (`/commands/new/`) for `device=` udids or a `filter=`."""
    pairs = []
    for udid in targets.get("devices", ()):
        pairs.append(("device", udid))
    if targets.get("filter") is not None:
        pairs.append(("filter", targets["filter"]))
    if request_type:
        pairs.append(("type", request_type))
    return "/commands/new/?" + urlencode(pairs)


# --- the list ------------------------------------------------------------------------------------


class ActionForm(forms.Form):
    """What to do with the selected devices: send them a command, or put them in a group.

    The selection is either the checked devices (`device`, repeated) or, with
    `scope=matching`, every device that matches `filter` (an empty filter: every device).
    """

    ACTIONS = [("command", "Send a command…"), ("group", "Add to group")]
    SCOPES = [("selected", "The selected devices"), ("matching", "Every device that matches")]

    action = forms.ChoiceField(label="Action", choices=ACTIONS)
    scope = forms.ChoiceField(choices=SCOPES, required=False, widget=forms.HiddenInput)
    type = forms.ChoiceField(label="Command", required=False)
    group = forms.ModelChoiceField(
        label="Group",
        queryset=DeviceGroup.objects.order_by("name"),
        required=False,
        empty_label="Choose a group",
    )
    device = forms.MultipleChoiceField(required=False, widget=forms.MultipleHiddenInput)
    filter = forms.CharField(required=False, widget=forms.HiddenInput, strip=False)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "Choose on the next page")] + [
            (rt, label.rstrip("…")) for rt, label, role in COMMON_COMMANDS if has_role(user, role)
        ]
        if self.is_bound:
            self.fields["device"].choices = [(u, u) for u in self.data.getlist("device")]

    def clean(self):
        data = super().clean()
        if data.get("scope") != "matching" and not data.get("device"):
            raise forms.ValidationError("Select at least one device, or every device that matches.")
        if data.get("action") == "group" and data.get("group") is None:
            self.add_error("group", "Choose the group to add the devices to.")
        return data

    def every_match(self) -> bool:
        return self.cleaned_data.get("scope") == "matching"

    def selection(self):
        """The selected devices (a queryset), or SelectionError for an unreadable filter."""
        if self.every_match():
            return devices_matching(self.cleaned_data["filter"])
        return Device.objects.filter(udid__in=self.cleaned_data["device"])


def _table(request, queryset):
    table = DeviceTable(
        KeysFirstData(queryset.select_related("group").only(*LIST_FIELDS)),
        selectable=has_role(request.user, OPERATOR),
    )
    paginate(table, request, per_page=PAGE_SIZE)
    if table.page is not None:  # LazyPaginator knows no total: say which rows these are
        table.first_row = (table.page.number - 1) * PAGE_SIZE + 1
        table.last_row = table.first_row + len(table.page.object_list) - 1
    return table


def _list_context(request, query, *, action_form=None) -> tuple[dict, int]:
    selection: DeviceFilter = read_filter(query, Device.objects.all())
    status = 200
    if selection.is_bound and not selection.is_valid():
        queryset = Device.objects.none()
        status = 400
    else:
        queryset = selection.qs
    filter_qs = filter_querystring(query)
    context = {
        "title": "Devices",
        "filter": selection,
        "table": _table(request, queryset),
        "filter_qs": filter_qs,
        "filtered": bool(filter_qs),
        "export_url": "/devices/export.csv" + (f"?{filter_qs}" if filter_qs else ""),
        "all_selected": query.get("select") == "all" and status == 200,
        "querystring": query.urlencode(),
        "select_all_url": "?" + _with(query, select="all", page=None),
        "clear_selection_url": "?" + _with(query, select=None),
    }
    if context["all_selected"]:
        context["match_count"] = queryset.count()  # the one COUNT, on the explicit action
    if has_role(request.user, OPERATOR):
        context["action_form"] = action_form or ActionForm(user=request.user)
    return context, status


def _added_message(change, group: DeviceGroup) -> str:
    """What adding to a group did, in words (enrollment.membership's MembershipChange)."""
    words = f"{change.moved} device(s) added to the group {group.name}"
    queued = [
        f"{count} {what}"
        for count, what in (
            (change.installs, "profile install(s)"),
            (change.removals, "removal(s)"),
        )
        if count
    ]
    return words + (f"; {' and '.join(queued)} queued." if queued else ".")


def _with(query, **changes) -> str:
    """`query` url-encoded with `changes` (None removes a key)."""
    query = query.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = value
    return query.urlencode()


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(VIEWER)
def device_list(request):
    """The list (GET), and its bulk actions (POST, operators) on the same URL, so that a
    refused action is shown on the very page it came from, with its filter (400)."""
    if request.method == "POST":
        return _act(request)
    context, status = _list_context(request, request.GET)
    if request.htmx and request.htmx.target == "results":
        # htmx swaps only 2xx answers: the partial shows the filter's errors in a banner.
        return render(request, "devices/_results.html", {**context, "partial": True})
    return render(request, "devices/list.html", context, status=status)


def _act(request):
    """Hand the selection to the command form, or add it to a group."""
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied(f"this needs the {OPERATOR} role")
    form = ActionForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            devices = form.selection()
        except SelectionError as exc:
            form.add_error(None, f"The filter cannot be read: {exc}")
        else:
            data = form.cleaned_data
            scope = (
                {"filter": data["filter"]} if form.every_match() else {"devices": data["device"]}
            )
            if data["action"] == "command":
                return HttpResponseRedirect(command_url(data["type"] or None, **scope))
            group = data["group"]
            change = add_to_group(group, devices, by=request.user, address=client_address(request))
            messages.success(request, _added_message(change, group))
            query = request.GET.copy()
            query.pop("select", None)
            return HttpResponseRedirect("/devices/" + (f"?{query.urlencode()}" if query else ""))
    context, _status = _list_context(request, request.GET, action_form=form)
    return render(request, "devices/list.html", context, status=400)


@require_GET
@role_required(VIEWER)
def device_export(request):
    """The filtered list as CSV, streamed (no secret, no push detail)."""
    try:
        devices = devices_matching(request.GET)
    except SelectionError as exc:
        context, _status = _list_context(request, request.GET)
        messages.error(request, f"The filter cannot be read: {exc}")
        return render(request, "devices/list.html", context, status=400)
    writer = csv.writer(_Echo())
    rows = (writer.writerow(row) for row in csv_rows(devices))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="devices-{stamp}.csv"'
    return response


class _Echo:
    """csv.writer's file: hands each line back instead of writing it (for streaming)."""

    def write(self, value: str) -> str:
        return value


# --- a device -------------------------------------------------------------------------------------


def _device(udid: str) -> Device:
    escrowed = {
        "has_unlock_token": ExpressionWrapper(
            Q(unlock_token__isnull=False), output_field=BooleanField()
        ),
        "has_bootstrap_token": ExpressionWrapper(
            Q(bootstrap_token__isnull=False), output_field=BooleanField()
        ),
    }
    device = (
        Device.objects.select_related("group")
        .defer("unlock_token", "bootstrap_token")  # secrets: only whether they are escrowed
        .annotate(**escrowed)
        .filter(udid=udid)
        .first()
    )
    if device is None:
        raise Http404("no device with this UDID")
    return device


def _recipient(device: Device) -> Recipient:
    return Recipient(
        id=device.pk,
        udid=device.udid,
        access_rights=device.access_rights,
        platform=device.platform,
        os_version=device.os_version,
        lost_mode=device.lost_mode,
        has_unlock_token=device.has_unlock_token,
    )


def _refresh_links(request, device: Device, sections: list[dict]) -> list[dict]:
    """Each inventory section's "Refresh" link, or why the device cannot be asked for it (a
    Mac has no Restrictions query; an enrollment may not allow it)."""
    may_send = has_role(request.user, OPERATOR) and device.state == Device.State.ENROLLED
    recipient = _recipient(device)
    for section in sections:
        section["unavailable"] = unavailable_reason(section["kind"], recipient)
        if may_send and not section["unavailable"]:
            section["refresh_url"] = command_url(section["kind"], devices=[device.udid])
    return sections


def _commands(request, device: Device) -> dict:
    """The command links a person may use on this device, and why others are not offered."""
    if not has_role(request.user, OPERATOR):
        return {"offered": [], "note": "Your role can read this device but not send it commands."}
    if device.state != Device.State.ENROLLED:
        return {
            "offered": [],
            "note": "Commands can be sent once the device is enrolled (after its TokenUpdate).",
        }
    recipient = _recipient(device)
    offered = []
    for request_type, label, role in COMMON_COMMANDS:
        if not has_role(request.user, role):
            continue
        if request_type == ("DisableLostMode" if not device.lost_mode else "EnableLostMode"):
            continue
        offered.append(
            {
                "type": request_type,
                "label": label,
                "url": command_url(request_type, devices=[device.udid]),
                "refused": unavailable_reason(request_type, recipient),
                "danger": request_type in DESTRUCTIVE,
            }
        )
    note = ""
    if device.token_invalid_at is not None:
        note = (
            "APNs reported this device's push token invalid: no command is queued until its "
            "next TokenUpdate."
        )
    return {
        "offered": offered,
        "refused_any": any(c["refused"] for c in offered),
        "other": command_url(devices=[device.udid]),
        "note": note,
    }


def _history_limit(request) -> int:
    try:
        return max(HISTORY_STEP, min(HISTORY_MAX, int(request.GET.get("commands", HISTORY_STEP))))
    except ValueError:
        return HISTORY_STEP


@require_GET
@role_required(VIEWER)
def device_detail(request, udid: str):
    device = _device(udid)
    limit = _history_limit(request)
    history = recent_commands(device, limit + 1, redact=True)
    context = {
        "title": str(device),
        "device": device,
        "history": history[:limit],
        "more_history": limit + HISTORY_STEP
        if len(history) > limit and limit < HISTORY_MAX
        else None,
    }
    if request.htmx and request.htmx.target == "history-rows":
        return render(request, "devices/_history.html", context)
    identity = current_identity(device)
    context.update(
        {
            "enrollment": device_enrollment(device),
            "identity": identity,
            "identity_days_left": (identity.not_after - timezone.now()).days if identity else None,
            "rights": rights_in_words(device.access_rights),
            "last_push": PushAttempt.objects.filter(device=device).order_by("-created_at").first(),
            "inventory": _refresh_links(request, device, inventory_sections(device)),
            "commands": _commands(request, device),
            "declarations": declarations_section(device),
            "state_badges": state_badges(device),
            "last_seen": ago(device.last_seen_at),
        }
    )
    return render(request, "devices/detail.html", context)
