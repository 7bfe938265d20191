"""/enrollments/dep/profiles/: DEP profiles, what Setup Assistant shows and enforces on a
server's devices and the enrollment they get from /dep/enroll.

Thin views over enrollment.dep_profiles (save_profile defines the profile with Apple,
set_auto_assign makes it the server's profile for new devices), the functions `mdm_dep` calls
too. Every role reads; an admin creates and edits (a profile decides whether devices are
supervised and whether their management can be removed); an operator assigns.
"""

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from mdm_portal.roles import ADMIN, VIEWER, role_required

from ..dep_client import DepError
from ..dep_listing import dep_devices
from ..dep_models import DepProfile
from ..dep_profiles import DepProfileError, save_profile, set_auto_assign
from ..dep_skip_keys import SKIP_PANES
from ..dep_tokens import DepTokenError
from .common import bound, paginate, submit
from .dep_common import acting_here
from .dep_forms import AssignForm, DepProfileForm
from .dep_tables import DepDeviceTable, DepProfileTable

# What save_profile refuses with (its checks, Apple's answer, a token that no longer works):
# the message lands on the form, nothing is saved.
REFUSALS = (DepProfileError, DepError, DepTokenError)
SKIP_TITLES = {key: title for key, title, _platforms, _deprecated in SKIP_PANES}


def _profiles():
    return DepProfile.objects.select_related("server", "enrollment").annotate(
        device_count=Count("devices")
    )


@role_required(VIEWER)
def profile_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "enrollment/dep/profile_list.html",
        {"title": "DEP profiles", "table": paginate(request, DepProfileTable(_profiles()))},
    )


def _save(request, form: DepProfileForm, profile: DepProfile | None):
    """Define the profile with Apple, then the server's auto-assign if the box changed it."""
    data = form.cleaned_data
    server = profile.server if profile is not None else data["server"]
    acting_here(request)
    saved = save_profile(
        server,
        name=data["name"],
        enrollment=data["enrollment"],
        settings=form.settings(),
        actor=request.user,
        profile=profile,
    )
    server.refresh_from_db(fields=["auto_assign_profile"])
    is_auto = server.auto_assign_profile_id == saved.pk
    if data["auto_assign"] and not is_auto:
        set_auto_assign(server, saved, actor=request.user)
    elif not data["auto_assign"] and is_auto:
        set_auto_assign(server, None, actor=request.user)
    verb = "saved" if profile is not None else "created"
    messages.success(request, f"DEP profile {saved.name} {verb} and defined with Apple.")
    return redirect("dep-profile", pk=saved.pk)


def _form_page(request, form, *, profile: DepProfile | None, status: int):
    title = f"Edit {profile.name}" if profile is not None else "New DEP profile"
    return render(
        request,
        "enrollment/dep/profile_form.html",
        {"title": title, "form": form, "profile": profile},
        status=status,
    )


@role_required(ADMIN)
def profile_new(request: HttpRequest) -> HttpResponse:
    initial = {"server": request.GET.get("server")} if request.GET.get("server") else None
    form = bound(request, DepProfileForm, initial=initial)
    answer, status = submit(
        form,
        lambda data: _save(request, form, None),
        errors=(DepError, DepProfileError, DepTokenError),
    )
    return answer or _form_page(request, form, profile=None, status=status)


@role_required(ADMIN)
def profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(DepProfile.objects.select_related("server"), pk=pk)
    form = bound(request, DepProfileForm, profile=profile)
    answer, status = submit(
        form,
        lambda data: _save(request, form, profile),
        errors=(DepError, DepProfileError, DepTokenError),
    )
    return answer or _form_page(request, form, profile=profile, status=status)


@role_required(VIEWER)
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(_profiles(), pk=pk)
    settings = profile.settings or {}
    devices = DepDeviceTable(dep_devices().filter(assigned_profile=profile), show_server=False)
    skipped = [(key, SKIP_TITLES.get(key, key)) for key in settings.get("skip_setup_items", [])]
    return render(
        request,
        "enrollment/dep/profile_detail.html",
        {
            "title": profile.name,
            "profile": profile,
            "settings": settings,
            "skipped": skipped,
            "is_auto_assign": profile.server.auto_assign_profile_id == profile.pk,
            "devices": paginate(request, devices),
            "assign_form": AssignForm(initial={"profile": profile.pk}),
            "assign_next": reverse("dep-profile", args=[pk]),
        },
    )
