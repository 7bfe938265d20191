"""/groups/: device groups, their members and the profiles assigned to them.

Membership goes through enrollment.membership, so a device that joins gets the group's
profiles and one that leaves loses those nothing else keeps on it.
"""

from django.contrib import messages
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from commands.queue import EnqueueError
from devices.groups import GroupError, create_group, find_devices, rename_group
from devices.models import Device, DeviceGroup
from mdm_portal.roles import OPERATOR, VIEWER, has_role, role_required

from ..library import LibraryError, assign
from ..membership import add_to_group, delete_group, deletion_impact, remove_from_group
from ..models import Enrollment, Profile, ProfileAssignment
from .common import acting, bound, commands_queued, confirm, paginate, submit
from .forms import DevicesForm, GroupForm, GroupProfileForm
from .tables import GroupTable, MemberTable


def _count(queryset) -> Subquery:
    """A correlated COUNT(*) of `queryset` (already filtered on OuterRef)."""
    counted = queryset.order_by().values("group").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@role_required(VIEWER)
def group_list(request):
    groups = DeviceGroup.objects.annotate(
        device_count=_count(Device.objects.filter(group=OuterRef("pk"))),
        profile_count=_count(ProfileAssignment.objects.filter(group=OuterRef("pk"))),
    )
    return render(
        request,
        "enrollment/group_list.html",
        {"title": "Groups", "table": paginate(request, GroupTable(groups)), "form": GroupForm()},
    )


@role_required(OPERATOR)
def group_new(request):
    form = bound(request, GroupForm)

    def create(data):
        group = create_group(data["name"], description=data["description"], **acting(request))
        messages.success(request, f"Group {group.name} created: add devices to it.")
        return redirect("group-detail", pk=group.pk)

    answer, status = submit(form, create, errors=GroupError, field="name")
    return answer or render(
        request, "enrollment/group_form.html", {"title": "New group", "form": form}, status=status
    )


def _profiles_of(group: DeviceGroup):
    return Profile.objects.filter(
        pk__in=ProfileAssignment.objects.filter(group=group).values("profile")
    ).order_by("name")


@role_required(VIEWER)
def group_detail(request, pk: int):
    group = get_object_or_404(DeviceGroup, pk=pk)
    members = Device.objects.filter(group=group)
    profiles = _profiles_of(group)
    return render(
        request,
        "enrollment/group_detail.html",
        {
            "title": group.name,
            "group": group,
            "members": paginate(
                request,
                MemberTable(
                    members, exclude=() if has_role(request.user, OPERATOR) else ["select"]
                ),
            ),
            "profiles": profiles,
            "enrollments": Enrollment.objects.filter(group=group).order_by("name"),
            "rename_form": GroupForm(
                initial={"name": group.name, "description": group.description}
            ),
            "add_form": DevicesForm(),
            "profile_form": _profile_form(exclude=profiles),
        },
    )


def _profile_form(data=None, exclude=None) -> GroupProfileForm:
    form = GroupProfileForm(data)
    if exclude is not None:
        form.fields["profile"].queryset = Profile.objects.exclude(
            pk__in=exclude.values("pk")
        ).order_by("name")
    return form


@role_required(OPERATOR)
def group_rename(request, pk: int):
    group = get_object_or_404(DeviceGroup, pk=pk)
    old = group.name
    form = bound(request, GroupForm, initial={"name": old, "description": group.description})

    def rename(data):
        rename_group(group, data["name"], description=data["description"], **acting(request))
        messages.success(request, f"Group {old} is now {group.name}.")
        return redirect("group-detail", pk=pk)

    answer, status = submit(form, rename, errors=GroupError, field="name")
    return answer or render(
        request,
        "enrollment/group_form.html",
        {"title": f"Rename {old}", "group": group, "form": form},
        status=status,
    )


def _membership_message(request, change, verb: str) -> None:
    text = f"{change.moved} device(s) {verb}"
    if change.from_other_groups:
        text += f" ({change.from_other_groups} left another group to join)"
    text += (
        f". Queued: {change.installs} InstallProfile and {change.removals} RemoveProfile "
        "(one per device and profile)."
    )
    if change.skipped:
        text += (
            f" Skipped {change.skipped}: devices without the right to install or remove "
            "profiles, or whose push token is invalid."
        )
    messages.success(request, text)


@role_required(OPERATOR)
def group_add(request, pk: int):
    group = get_object_or_404(DeviceGroup, pk=pk)
    form = bound(request, DevicesForm)

    def add(data):
        change = add_to_group(group, data["devices"], **acting(request))
        _membership_message(request, change, f"added to {group.name}")
        return redirect("group-detail", pk=pk)

    answer, status = submit(form, add, errors=(EnqueueError, LibraryError))
    return answer or render(
        request,
        "enrollment/group_devices.html",
        {"title": f"Add devices to {group.name}", "group": group, "form": form},
        status=status,
    )


def _selected(request, group: DeviceGroup):
    """The devices to remove: ticked in the members table (`device`, UDIDs) or listed in the
    text area (`devices`, UDIDs or serials). Raises GroupError."""
    source = request.POST if request.method == "POST" else request.GET
    ticked = [udid for udid in source.getlist("device") if udid]
    text = "\n".join(ticked) if ticked else source.get("devices", "")
    devices = find_devices(text)
    if not devices.filter(group=group).exists():
        raise GroupError(f"none of these devices is in {group.name}")
    return devices, text


@role_required(OPERATOR)
def group_remove(request, pk: int):
    group = get_object_or_404(DeviceGroup, pk=pk)
    detail = reverse("group-detail", args=[pk])
    try:
        devices, text = _selected(request, group)
    except GroupError as exc:
        source = request.POST if request.method == "POST" else request.GET
        ticked = "\n".join(source.getlist("device"))
        form = DevicesForm({"devices": ticked or source.get("devices", "")})
        if form.is_valid():  # the devices exist, but none is in the group
            form.add_error("devices", str(exc))
        return render(
            request,
            "enrollment/group_devices.html",
            {
                "title": f"Remove devices from {group.name}",
                "group": group,
                "form": form,
                "removing": True,
            },
            status=400,
        )
    if request.method == "POST":
        change = remove_from_group(group, devices, **acting(request))
        _membership_message(request, change, f"removed from {group.name}")
        return redirect(detail)
    members = devices.filter(group=group)
    outside = devices.count() - members.count()
    names = [str(device) for device in members.order_by("device_name", "udid")[:20]]
    return confirm(
        request,
        title=f"Remove {members.count()} device(s) from {group.name}?",
        action=reverse("group-remove", args=[pk]),
        button="Remove from the group",
        cancel=detail,
        fields={"devices": text},
        explanation="Devices: " + ", ".join(names) + (" …" if members.count() > len(names) else ""),
        consequences=[
            "They end up in no group.",
            f"RemoveProfile is queued for each of {group.name}'s profiles they have "
            "installed, unless another assignment keeps it on them.",
            *(
                [f"{outside} of the devices listed are not in {group.name}: unchanged."]
                if outside
                else []
            ),
        ],
    )


@role_required(OPERATOR)
def group_assign(request, pk: int):
    """Assign a library profile to the group (the form on the group's page)."""
    group = get_object_or_404(DeviceGroup, pk=pk)
    form = _profile_form(request.POST if request.method == "POST" else None)

    def assign_it(data):
        profile = data["profile"]
        queued, skipped = assign(profile, group=group, **acting(request))
        what = f"{profile.name} assigned to {group.name}"
        commands_queued(request, what, queued, skipped, "InstallProfile")
        return redirect("group-detail", pk=pk)

    answer, status = submit(form, assign_it, errors=(LibraryError, EnqueueError), field="profile")
    return answer or render(
        request,
        "enrollment/group_assign.html",
        {"title": f"Assign a profile to {group.name}", "group": group, "form": form},
        status=status,
    )


@role_required(OPERATOR)
def group_delete(request, pk: int):
    group = get_object_or_404(DeviceGroup, pk=pk)
    if request.method == "POST":
        name = group.name
        change = delete_group(group, **acting(request))
        messages.success(
            request,
            f"Group {name} deleted: {change.moved} device(s) are in no group now; "
            f"{change.removals} RemoveProfile queued.",
        )
        return redirect("group-list")
    impact = deletion_impact(group)
    profiles = ", ".join(profile.name for profile in impact["profiles"])
    enrollments = ", ".join(enrollment.name for enrollment in impact["enrollments"])
    return confirm(
        request,
        title=f"Delete the group {group.name}?",
        action=reverse("group-delete", args=[pk]),
        button="Delete the group",
        cancel=reverse("group-detail", args=[pk]),
        consequences=[
            f"Its {impact['devices']} device(s) stay enrolled, in no group.",
            (
                f"Its profile assignments ({profiles}) end: RemoveProfile is queued for the "
                "devices that have them installed, unless another assignment keeps them."
                if profiles
                else "No profile is assigned to it."
            ),
            (
                f"The enrollments that put devices in it ({enrollments}) put them in no group "
                "from now on."
                if enrollments
                else "No enrollment puts devices in it."
            ),
        ],
    )
