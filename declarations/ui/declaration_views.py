"""/declarations/: the declarations (list, new from the schema form or JSON, a declaration's
page with its state on every device, edit, delete). Each view parses the request and calls
one function of declarations.store, which validates, audits and tells the devices concerned.
The data the portal serves for an asset has its own pages (data_views)."""

import json

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render

from devices.models import Device
from enrollment.ui.common import acting, confirm, paginate
from mdm_portal import listing
from mdm_portal.roles import OPERATOR, VIEWER, has_role, role_required

from ..display import as_shown
from ..manifest import references
from ..models import Declaration, DeclarationSet
from ..schema import TYPES, DeclarationError, types_of_kind
from ..states import counts, declaration_rows, failing_summary
from ..store import (
    affected_devices,
    delete_declaration,
    referrers,
    save_declaration,
    sets_including,
)
from .access import (
    credential_source,
    declaration_or_404,
    require,
    role_for,
    role_for_declaration,
    servable,
)
from .forms import DESCRIPTION, DeclarationForm, UploadJSONForm
from .tables import (
    DeclarationFilter,
    DeclarationTable,
    StateCounts,
    StateTable,
    breakable,
    declaration_url,
    type_title,
)

KIND_ORDER = ("configuration", "activation", "asset", "management")
KIND_HEADINGS = {
    "configuration": "Configurations",
    "activation": "Activations",
    "asset": "Assets",
    "management": "Management",
}
KIND_HELP = {
    "configuration": "Settings the device applies: passcode policy, accounts, software "
    "updates… A configuration takes effect when an activation names it.",
    "activation": "Which configurations a device applies, and when (a predicate).",
    "asset": "Data that configurations refer to: credentials, certificates, files. The "
    "portal can serve the data itself.",
    "management": "Facts about the organization and the server the device shows or uses.",
}
DEVICES_NAMED = 10  # devices listed by name on a confirmation page


# --- the list ---------------------------------------------------------------------------------


@role_required(VIEWER)
def declaration_list(request):
    found = DeclarationFilter(request.GET, queryset=Declaration.objects.prefetch_related("sets"))
    valid = found.is_valid()  # a value no filter knows: a 400 that says so, no rows
    table = DeclarationTable(found.qs if valid else Declaration.objects.none())
    listing.paginate(table, request)
    context = {
        "title": "Declarations",
        "filter": found,
        "table": table,
        "failing": failing_summary(),
        "set_count": DeclarationSet.objects.count(),
    }
    return render(request, "declarations/list.html", context, status=200 if valid else 400)


# --- a new declaration ------------------------------------------------------------------------


def _chooser(user) -> list[dict]:
    """The Types by kind, with Apple's title and description, and what this user may do."""
    sections = []
    for kind in KIND_ORDER:
        entries = []
        for declaration_type in types_of_kind(kind):
            name = declaration_type.name
            entries.append(
                {
                    "type": name,
                    "breakable": breakable(name),
                    "title": type_title(name),
                    "description": declaration_type.description,
                    "allowed": has_role(user, role_for(name)),
                    "servable": servable(name) and has_role(user, role_for(name, served=True)),
                    "role": role_for(name),
                }
            )
        sections.append(
            {
                "kind": kind,
                "heading": KIND_HEADINGS[kind],
                "help": KIND_HELP[kind],
                "entries": entries,
            }
        )
    return sections


@role_required(OPERATOR)
def declaration_new(request):
    """Choose a Type (no `type`), then the Type's form built from its schema."""
    name = request.GET.get("type", "").strip()
    if name not in TYPES:
        context = {
            "title": "New declaration",
            "sections": _chooser(request.user),
            "problem": f"unknown declaration Type {name!r}: choose one below" if name else "",
        }
        return render(request, "declarations/new.html", context, status=400 if name else 200)
    require(request, role_for(name), name)
    form = DeclarationForm(
        request.POST if request.method == "POST" else None, declaration_type=TYPES[name]
    )
    if request.method == "POST" and form.is_valid():
        try:
            declaration, _ = save_declaration(
                form.declaration(),
                description=form.cleaned_data[DESCRIPTION],
                create_only=True,
                **acting(request),
            )
        except DeclarationError as exc:
            form.add_declaration_error(exc)
        else:
            messages.success(
                request,
                f"{declaration.identifier} is stored. Put it in a set and assign the set to "
                "devices or groups to send it.",
            )
            return redirect(declaration_url(declaration.identifier))
    return _form_page(request, form, title=f"New {type_title(name)}")


def _form_page(request, form: DeclarationForm, *, title: str):
    name = form.declaration_type.name
    context = {
        "title": title,
        "form": form,
        "declaration_type": form.declaration_type,
        "declaration": form.existing,
        "detail_url": declaration_url(form.existing.identifier) if form.existing else "",
        "servable": form.existing is None
        and servable(name)
        and has_role(request.user, role_for(name, served=True)),
        "credential_source": credential_source(name),
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "declarations/form.html", context, status=status)


# --- JSON ---------------------------------------------------------------------------------------


@role_required(OPERATOR)
def declaration_upload(request):
    """One declaration or an array of them, as a file or pasted: all stored, or none."""
    form = (
        UploadJSONForm(request.POST, request.FILES)
        if request.method == "POST"
        else UploadJSONForm()
    )
    if request.method == "POST" and form.is_valid():
        items = form.cleaned_data["declarations"]
        for item in items:
            require(request, _role_for_item(item), f"a declaration of Type {_type_of(item)}")
        try:
            with transaction.atomic():
                stored = [
                    _store_item(request, index, item, len(items))
                    for index, item in enumerate(items)
                ]
        except DeclarationError as exc:
            form.add_error(form.cleaned_data["where"], str(exc))
        else:
            created = sum(1 for _declaration, new in stored if new)
            messages.success(
                request,
                f"{len(stored)} declaration(s) stored: {created} new, "
                f"{len(stored) - created} updated (a new ServerToken where they changed).",
            )
            if len(stored) == 1:
                return redirect(declaration_url(stored[0][0].identifier))
            return redirect("declarations")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "declarations/upload.html", {"title": "Upload JSON", "form": form}, status=status
    )


def _type_of(item) -> str:
    return str(item.get("Type", "")) if isinstance(item, dict) else ""


def _role_for_item(item) -> str:
    if not isinstance(item, dict):
        return OPERATOR  # refused by the schema's check, with its message
    existing = (
        Declaration.objects.select_related("served")
        .filter(identifier=str(item.get("Identifier", "")))
        .first()
    )
    if existing is not None:
        return max(role_for_declaration(existing), role_for(str(item.get("Type", ""))), key=_rank)
    return role_for(str(item.get("Type", "")))


def _rank(role: str) -> int:
    return 0 if role == OPERATOR else 1


def _store_item(request, index: int, item, total: int):
    try:
        return save_declaration(item, **acting(request))
    except DeclarationError as exc:
        if total == 1:
            raise
        named = item.get("Identifier") if isinstance(item, dict) else None
        where = f"declaration {index + 1} of {total}" + (f" ({named})" if named else "")
        raise DeclarationError(f"{where}: {exc} (nothing was stored)", key=exc.key) from None


# --- one declaration --------------------------------------------------------------------------


def _as_sent(declaration: Declaration) -> str:
    """The declaration as a device receives it, secrets masked (declarations.display)."""
    return json.dumps(as_shown(declaration), indent=2, ensure_ascii=False)


def _reaching_sets(declaration: Declaration) -> list[dict]:
    """The sets that send it (holding it, or a declaration that refers to it), each with
    where the set is assigned."""
    direct = set(declaration.sets.values_list("pk", flat=True))
    found = (
        DeclarationSet.objects.filter(pk__in=sets_including(declaration.identifier))
        .prefetch_related("groups")
        .order_by("name")
    )
    return [
        {
            "set": declaration_set,
            "direct": declaration_set.pk in direct,
            "groups": list(declaration_set.groups.all()),
            "devices": declaration_set.devices.count(),
        }
        for declaration_set in found
    ]


@role_required(VIEWER)
def declaration_detail(request, identifier: str):
    declaration = declaration_or_404(identifier)
    rows = declaration_rows(declaration)
    table = paginate(request, StateTable(rows, exclude=("identifier", "kind")))
    held = set(
        Declaration.objects.filter(identifier__in=references(declaration)).values_list(
            "identifier", flat=True
        )
    )
    served = declaration.served if hasattr(declaration, "served") else None
    context = {
        "title": declaration.identifier,
        "declaration": declaration,
        "declaration_type": TYPES.get(declaration.type),
        "type_title": type_title(declaration.type),
        "as_sent": _as_sent(declaration),
        "reaching": _reaching_sets(declaration),
        "references": [
            (ref, declaration_url(ref) if ref in held else "")
            for ref in sorted(references(declaration))
        ],
        "referrers": [(ref, declaration_url(ref)) for ref in referrers(declaration)],
        "table": table,
        "state_counts": StateCounts(counts(rows)),
        "served": served,
        "may_change": has_role(request.user, role_for_declaration(declaration)),
        "may_serve": served is not None
        and has_role(request.user, role_for(declaration.type, served=True)),
    }
    return render(request, "declarations/detail.html", context)


@role_required(OPERATOR)
def declaration_edit(request, identifier: str):
    """The same form as a new one, filled in; the Identifier and Type are fixed, and the
    Reference of data the portal serves is kept (new data goes through the data page)."""
    declaration = declaration_or_404(identifier)
    require(request, role_for_declaration(declaration), f"changing {identifier}")
    kept = ("Reference", "Authentication") if hasattr(declaration, "served") else ()
    form = DeclarationForm(
        request.POST if request.method == "POST" else None,
        declaration_type=TYPES[declaration.type],
        declaration=declaration,
        kept=kept,
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved, _ = save_declaration(
                form.declaration(), description=form.cleaned_data[DESCRIPTION], **acting(request)
            )
        except DeclarationError as exc:
            form.add_declaration_error(exc)
        else:
            changed = saved.server_token != declaration.server_token
            messages.success(
                request,
                f"{identifier} is saved"
                + (
                    ": a new ServerToken, and the devices that have it are told."
                    if changed
                    else " (its content did not change: devices are not told)."
                ),
            )
            return redirect(declaration_url(identifier))
    return _form_page(request, form, title=f"Edit {identifier}")


@role_required(OPERATOR)
def declaration_delete(request, identifier: str):
    declaration = declaration_or_404(identifier)
    require(request, role_for_declaration(declaration), f"deleting {identifier}")
    detail = declaration_url(identifier)
    refusal = None
    if request.method == "POST":
        try:
            queued = delete_declaration(declaration, **acting(request))
        except DeclarationError as exc:
            refusal = str(exc)
        else:
            messages.success(
                request,
                f"{identifier} was deleted; DeclarativeManagement queued for {queued} "
                "device(s), which remove it.",
            )
            return redirect("declarations")
    else:
        using = referrers(declaration)
        if using:
            refusal = (
                f"{identifier} is referenced by {', '.join(using)}: change or delete those first."
            )
    return confirm(
        request,
        title=f"Delete {identifier}?",
        action=declaration_url(identifier, "delete"),
        button="Delete the declaration",
        cancel=detail,
        refusal=refusal,
        status=409 if refusal and request.method == "POST" else 200,
        consequences=_losing(declaration),
    )


def _losing(declaration: Declaration) -> list[str]:
    devices = Device.objects.filter(pk__in=affected_devices(declaration.identifier)).order_by(
        "device_name", "udid"
    )
    total = devices.count()
    lines = [f"{declaration.identifier} leaves the portal and the sets that hold it."]
    if total:
        named = ", ".join(
            f"{d.device_name or d.udid} ({d.serial_number or d.udid})"
            for d in devices[:DEVICES_NAMED]
        )
        more = f" and {total - DEVICES_NAMED} more" if total > DEVICES_NAMED else ""
        lines.append(f"{total} device(s) lose it at their next sync: {named}{more}.")
        lines.append("A DeclarativeManagement command is queued for each of them.")
    else:
        lines.append("No device should have it: no device is told.")
    return lines
