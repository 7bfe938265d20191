"""/profiles/: the configuration-profile library (enrollment.library)."""

import django_tables2 as tables
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from commands.models import QueuedCommand
from commands.queue import EnqueueError
from devices.models import Device, DeviceGroup, InstalledProfile
from mdm_portal.roles import OPERATOR, VIEWER, role_required

from ..library import (
    LibraryError,
    assign,
    delete_profile,
    installed_devices,
    missing_devices,
    size_problem,
    unassign,
    upload_profile,
)
from ..models import Profile
from ..payloads import profile_settings, readable_payloads, stored_profile
from .common import acting, back_to, bound, commands_queued, confirm, paginate, submit
from .forms import AssignForm, UploadForm
from .tables import DeviceTable, ProfileTable, state_badge

INSTALL_STATES = {
    "queued": ("queued", "install queued"),
    "sent": ("sent", "install sent"),
    "not_now": ("not_now", "device said not now"),
    "error": ("error", "install failed"),
    "command_format_error": ("error", "install refused"),
    "acknowledged": ("acknowledged", "installed, not yet in a ProfileList"),
    "canceled": ("canceled", "install canceled"),
    "expired": ("expired", "install expired"),
}


class MissingTable(DeviceTable):
    """Assigned devices that lack this version, with where their install stands."""

    install = tables.Column(verbose_name="Install", accessor="last_install", orderable=False)

    class Meta(DeviceTable.Meta):
        empty_text = "Every assigned device reports this version."

    def render_install(self, value):
        state, words = INSTALL_STATES.get(value, ("none", value))
        return state_badge(state, words)

    def value_install(self, value):
        return value


def _with_install_state(devices, profile: Profile):
    latest = (
        QueuedCommand.objects.filter(
            device=OuterRef("pk"),
            request_type="InstallProfile",
            command__profile_link__identifier=profile.identifier,
        )
        .order_by("-id")
        .values("status")[:1]
    )
    return devices.annotate(last_install=Subquery(latest))


@role_required(VIEWER)
def profile_list(request):
    profiles = Profile.objects.annotate(assignment_count=Count("assignments"))
    return render(
        request,
        "enrollment/profile_list.html",
        {
            "title": "Profiles",
            "table": paginate(request, ProfileTable(profiles)),
            "form": UploadForm(),
        },
    )


@role_required(OPERATOR)
def profile_upload(request):
    form = bound(request, UploadForm)
    upload = request.FILES.get("file")
    problem = size_problem(upload.size) if upload is not None else None
    if problem:  # refused before it is read
        form.is_valid()
        form.add_error("file", problem)
        answer, status = None, 413
    else:

        def store(data):
            profile = upload_profile(
                data["file"].read(),
                name=data["name"].strip(),
                uploaded_by=request.user,
                address=acting(request)["address"],
            )
            messages.success(
                request,
                f"{profile.name} ({profile.identifier}, version {profile.version}) is in the "
                "library. Assigned devices get this version as they report their profiles.",
            )
            return redirect("profile-detail", pk=profile.pk)

        answer, status = submit(form, store, errors=LibraryError, field="file")
    return answer or render(
        request,
        "enrollment/profile_upload.html",
        {"title": "Upload a profile", "form": form},
        status=status,
    )


@role_required(VIEWER)
def profile_detail(request, pk: int):
    profile = get_object_or_404(Profile, pk=pk)
    data = stored_profile(profile.payload)
    assignments = profile.assignments.select_related("group", "device")
    installed = DeviceTable(installed_devices(profile), prefix="installed-")
    missing = MissingTable(
        _with_install_state(missing_devices(profile), profile), prefix="missing-"
    )
    other_versions = (
        InstalledProfile.objects.filter(identifier=profile.identifier)
        .exclude(uuid=profile.uuid)
        .count()
    )
    return render(
        request,
        "enrollment/profile_detail.html",
        {
            "title": profile.name,
            "profile": profile,
            "settings": profile_settings(data),
            "payloads": readable_payloads(data),
            "group_assignments": [a for a in assignments if a.group_id],
            "device_assignments": [a for a in assignments if a.device_id],
            "installed": paginate(request, installed, per_page=25),
            "missing": paginate(request, missing, per_page=25),
            "other_versions": other_versions,
            "assign_form": AssignForm(),
        },
    )


@role_required(OPERATOR)
def profile_assign(request, pk: int):
    profile = get_object_or_404(Profile, pk=pk)
    form = bound(request, AssignForm)

    def assign_it(data):
        queued, skipped = _assign(profile, data, request)
        commands_queued(request, f"{profile.name} assigned", queued, skipped, "InstallProfile")
        return redirect(back_to(request, reverse("profile-detail", args=[pk])))

    answer, status = submit(form, assign_it, errors=(LibraryError, EnqueueError))
    return answer or render(
        request,
        "enrollment/profile_assign.html",
        {"title": f"Assign {profile.name}", "profile": profile, "form": form},
        status=status,
    )


def _assign(profile: Profile, data: dict, request) -> tuple[int, int]:
    if data["group"] is not None:
        return assign(profile, group=data["group"], **acting(request))
    queued = skipped = 0
    with transaction.atomic():
        for device in data["devices"]:
            device_queued, device_skipped = assign(profile, device=device, **acting(request))
            queued += device_queued
            skipped += device_skipped
    return queued, skipped


def _unassign_target(request, profile: Profile) -> dict:
    """The assignment named by the request (?group=<id> or ?device=<udid>), which must exist."""
    source = request.POST if request.method == "POST" else request.GET
    assignments = profile.assignments
    if source.get("group"):
        group = get_object_or_404(DeviceGroup, pk=_int(source["group"]))
        get_object_or_404(assignments, group=group)
        return {"group": group}
    device = get_object_or_404(Device, udid=source.get("device", ""))
    get_object_or_404(assignments, device=device)
    return {"device": device}


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


@role_required(OPERATOR)
def profile_unassign(request, pk: int):
    profile = get_object_or_404(Profile, pk=pk)
    target = _unassign_target(request, profile)
    detail = reverse("profile-detail", args=[pk])
    if request.method == "POST":
        try:
            queued, skipped = unassign(profile, **target, **acting(request))
        except (LibraryError, EnqueueError) as exc:
            messages.error(request, str(exc))
        else:
            commands_queued(request, f"{profile.name} unassigned", queued, skipped, "RemoveProfile")
        return redirect(back_to(request, detail))
    group, device = target.get("group"), target.get("device")
    where = f"the group {group.name}" if group else f"the device {device}"
    fields = {"group": group.pk} if group else {"device": device.udid}
    return confirm(
        request,
        title=f"Unassign {profile.name} from {where}?",
        action=reverse("profile-unassign", args=[pk]),
        button="Unassign and remove it from devices",
        cancel=back_to(request, detail),
        fields={**fields, "next": back_to(request, detail)},
        consequences=[
            f"{profile.name} is no longer assigned to {where}.",
            "RemoveProfile is queued for the devices that have it installed, unless another "
            "assignment (their group or the device itself) still keeps it on them.",
            "Installs still waiting for those devices are canceled.",
        ],
    )


@role_required(OPERATOR)
def profile_delete(request, pk: int):
    profile = get_object_or_404(Profile, pk=pk)
    detail = reverse("profile-detail", args=[pk])
    refusal = None
    if request.method == "POST":
        try:
            delete_profile(profile, **acting(request))
        except LibraryError as exc:
            refusal = str(exc)
        else:
            messages.success(request, f"{profile.name} ({profile.identifier}) was deleted.")
            return redirect("profile-list")
    elif profile.assignments.exists():
        refusal = (
            f"{profile.name} is still assigned. Unassign it from every group and device first: "
            "that removes it from the devices that have it. Then it can be deleted."
        )
    return confirm(
        request,
        title=f"Delete {profile.name}?",
        action=reverse("profile-delete", args=[pk]),
        button="Delete the profile",
        cancel=detail,
        refusal=refusal,
        status=409 if refusal and request.method == "POST" else 200,
        consequences=[
            f"{profile.identifier} leaves the library: it is no longer installed or reconciled.",
            "Devices that have it installed keep it (deleting queues no RemoveProfile).",
            "Installs of it still waiting in the queue are canceled.",
        ],
    )
