"""/declarations/sets/: declaration sets, what they hold and where they are assigned.

Every change goes through declarations.sets, which checks that the devices concerned can take
the declarations (a refusal names the devices and why, shown next to the form), audits, and
queues one DeclarativeManagement command per device whose declarations changed."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from devices.models import Device
from enrollment.ui.common import acting, back_to, confirm, paginate
from mdm_portal.roles import OPERATOR, VIEWER, has_role, role_required

from ..manifest import manifest_of_sets
from ..models import DeclarationSet
from ..schema import DeclarationError
from ..sets import add_declarations, assign, create_set, delete_set, remove_declarations, unassign
from ..states import failing_by_declaration
from ..store import devices_of_sets
from .forms import AddDeclarationsForm, SetAssignForm, SetForm
from .tables import AssignedDeviceTable, SetTable, declaration_url, sets_with_counts, type_title

DEVICES_NAMED = 10


def _told(queued: int) -> str:
    return f"DeclarativeManagement queued for {queued} device(s)."


@role_required(VIEWER)
def set_list(request):
    context = {
        "title": "Declaration sets",
        "table": paginate(request, SetTable(sets_with_counts())),
        "form": SetForm(),
    }
    return render(request, "declarations/set_list.html", context)


@role_required(OPERATOR)
def set_new(request):
    form = SetForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            created = create_set(
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                **acting(request),
            )
        except DeclarationError as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(
                request, f"The set {created.name} is made: add declarations, then assign it."
            )
            return redirect("declaration-set", pk=created.pk)
    return render(
        request,
        "declarations/set_form.html",
        {"title": "New declaration set", "form": form},
        status=400 if request.method == "POST" else 200,
    )


def _set_page(request, declaration_set: DeclarationSet, *, add_form=None, assign_form=None):
    members = list(declaration_set.declarations.order_by("identifier"))
    sent = manifest_of_sets([declaration_set.pk])
    failing = failing_by_declaration()
    device_ids = devices_of_sets([declaration_set.pk])
    direct = AssignedDeviceTable(
        declaration_set.devices.all(),
        prefix="direct-",
        set_pk=declaration_set.pk,
        may_change=has_role(request.user, OPERATOR),
    )
    context = {
        "title": declaration_set.name,
        "declaration_set": declaration_set,
        "members": [
            {
                "declaration": d,
                "title": type_title(d.type),
                "url": declaration_url(d.identifier),
                "failing": failing.get(d.identifier, 0),
            }
            for d in members
        ],
        "referenced": [
            {"declaration": d, "url": declaration_url(d.identifier)}
            for identifier, d in sorted(sent.items())
            if d.pk not in {m.pk for m in members}
        ],
        "groups": list(declaration_set.groups.order_by("name")),
        "direct": paginate(request, direct, per_page=25),
        "device_count": len(device_ids),
        "add_form": add_form or AddDeclarationsForm(declaration_set=declaration_set),
        "assign_form": assign_form or SetAssignForm(),
    }
    bad = any(form is not None and form.errors for form in (add_form, assign_form))
    return render(request, "declarations/set_detail.html", context, status=400 if bad else 200)


@role_required(VIEWER)
def set_detail(request, pk: int):
    return _set_page(request, get_object_or_404(DeclarationSet, pk=pk))


@role_required(OPERATOR)
def set_add(request, pk: int):
    declaration_set = get_object_or_404(DeclarationSet, pk=pk)
    if request.method != "POST":
        return redirect("declaration-set", pk=pk)
    form = AddDeclarationsForm(request.POST, declaration_set=declaration_set)
    if form.is_valid():
        chosen = list(form.cleaned_data["declarations"])
        try:
            queued = add_declarations(declaration_set, chosen, **acting(request))
        except DeclarationError as exc:
            form.add_error("declarations", str(exc))
        else:
            names = ", ".join(d.identifier for d in chosen)
            messages.success(request, f"{names} added to {declaration_set.name}. {_told(queued)}")
            return redirect("declaration-set", pk=pk)
    return _set_page(request, declaration_set, add_form=form)


@role_required(OPERATOR)
def set_remove(request, pk: int):
    declaration_set = get_object_or_404(DeclarationSet, pk=pk)
    source = request.POST if request.method == "POST" else request.GET
    declaration = get_object_or_404(
        declaration_set.declarations, identifier=source.get("declaration", "")
    )
    page = reverse("declaration-set", args=[pk])
    if request.method == "POST":
        queued = remove_declarations(declaration_set, [declaration], **acting(request))
        messages.success(
            request,
            f"{declaration.identifier} removed from {declaration_set.name}. {_told(queued)}",
        )
        return redirect(page)
    return confirm(
        request,
        title=f"Remove {declaration.identifier} from {declaration_set.name}?",
        action=reverse("declaration-set-remove", args=[pk]),
        button="Remove it from the set",
        cancel=page,
        fields={"declaration": declaration.identifier},
        consequences=[
            f"The set's devices ({len(devices_of_sets([pk]))}) no longer get "
            f"{declaration.identifier} from this set; they remove it at their next sync "
            "unless another set (or a declaration that refers to it) still gives it to them.",
            "The declaration stays in the portal.",
        ],
    )


@role_required(OPERATOR)
def set_assign(request, pk: int):
    declaration_set = get_object_or_404(DeclarationSet, pk=pk)
    if request.method != "POST":
        return redirect(reverse("declaration-set", args=[pk]) + "#assign")
    form = SetAssignForm(request.POST)
    if form.is_valid():
        group, devices = form.cleaned_data["group"], form.cleaned_data["devices"]
        try:
            queued = assign(
                declaration_set,
                devices=devices,
                groups=[group] if group is not None else [],
                **acting(request),
            )
        except DeclarationError as exc:
            form.add_error("group" if group is not None else "devices", str(exc))
        else:
            where = f"the group {group.name}" if group else f"{devices.count()} device(s)"
            messages.success(
                request, f"{declaration_set.name} assigned to {where}. {_told(queued)}"
            )
            return redirect("declaration-set", pk=pk)
    return _set_page(request, declaration_set, assign_form=form)


def _target(request, declaration_set: DeclarationSet) -> dict:
    """The assignment the request names (?group=<id> or ?device=<udid>), which must exist."""
    source = request.POST if request.method == "POST" else request.GET
    if source.get("group"):
        group_id = source["group"]
        group = get_object_or_404(
            declaration_set.groups, pk=int(group_id) if group_id.isdigit() else 0
        )
        return {"groups": [group], "where": f"the group {group.name}", "field": ("group", group.pk)}
    device = get_object_or_404(declaration_set.devices, udid=source.get("device", ""))
    return {
        "devices": Device.objects.filter(pk=device.pk),
        "where": f"the device {device}",
        "field": ("device", device.udid),
    }


@role_required(OPERATOR)
def set_unassign(request, pk: int):
    declaration_set = get_object_or_404(DeclarationSet, pk=pk)
    target = _target(request, declaration_set)
    page = reverse("declaration-set", args=[pk])
    where = target.pop("where")
    name, value = target.pop("field")
    if request.method == "POST":
        queued = unassign(declaration_set, **target, **acting(request))
        messages.success(
            request, f"{declaration_set.name} unassigned from {where}. {_told(queued)}"
        )
        return redirect(back_to(request, page))
    affected = (
        Device.objects.filter(group__in=target["groups"]).count() if "groups" in target else 1
    )
    return confirm(
        request,
        title=f"Unassign {declaration_set.name} from {where}?",
        action=reverse("declaration-set-unassign", args=[pk]),
        button="Unassign",
        cancel=page,
        fields={name: value, "next": back_to(request, page)},
        consequences=[
            f"{affected} device(s) no longer get the set's declarations from this assignment.",
            "They remove what no other set gives them at their next sync: a "
            "DeclarativeManagement command is queued for each device whose declarations change.",
        ],
    )


@role_required(OPERATOR)
def set_delete(request, pk: int):
    declaration_set = get_object_or_404(DeclarationSet, pk=pk)
    if request.method == "POST":
        name = declaration_set.name
        queued = delete_set(declaration_set, **acting(request))
        messages.success(request, f"The set {name} was deleted. {_told(queued)}")
        return redirect("declaration-sets")
    devices = Device.objects.filter(pk__in=devices_of_sets([pk])).order_by("device_name", "udid")
    total = devices.count()
    named = ", ".join(str(d) for d in devices[:DEVICES_NAMED])
    more = f" and {total - DEVICES_NAMED} more" if total > DEVICES_NAMED else ""
    return confirm(
        request,
        title=f"Delete the set {declaration_set.name}?",
        action=reverse("declaration-set-delete", args=[pk]),
        button="Delete the set",
        cancel=reverse("declaration-set", args=[pk]),
        consequences=[
            f"The set and its assignments ({len(declaration_set.groups.all())} group(s), "
            f"{declaration_set.devices.count()} device(s) directly) are deleted; its "
            f"{declaration_set.declarations.count()} declaration(s) stay in the portal.",
            (
                f"{total} device(s) lose what no other set gives them: {named}{more}."
                if total
                else "No device has this set: no device is told."
            ),
        ],
    )
