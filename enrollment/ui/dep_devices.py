"""/enrollments/dep/devices/: every device our DEP servers hold in ABM, as the sync reports
it, with the portal's assignment, Apple's answer to it, and whether a device of the portal
with that serial is enrolled; and assigning a DEP profile to selected devices.

Thin views over enrollment.dep_listing (the list and its filters, shared with the API) and
enrollment.dep_profiles.assign_profile (the function `mdm_dep` calls too). Every role reads;
an operator assigns, and sees Apple's answer for each serial.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from mdm_portal.roles import OPERATOR, VIEWER, has_role, role_required

from ..dep_client import DepError
from ..dep_listing import DepDeviceFilter, dep_devices
from ..dep_profiles import DepProfileError, assign_profile
from ..dep_tokens import DepTokenError
from .common import back_to, paginate
from .dep_common import acting_here, results_page
from .dep_forms import AssignForm
from .dep_tables import DepDeviceTable


@role_required(VIEWER)
def device_list(request: HttpRequest) -> HttpResponse:
    found = DepDeviceFilter(request.GET, queryset=dep_devices())
    selectable = has_role(request.user, OPERATOR)
    table = DepDeviceTable(found.qs, selectable=selectable)
    return render(
        request,
        "enrollment/dep/device_list.html",
        {
            "title": "DEP devices",
            "filter": found,
            "table": paginate(request, table),
            "assign_form": AssignForm(),
            "filtered": any(request.GET.get(name) for name in found.form.fields),
        },
    )


@role_required(OPERATOR)
def device_assign(request: HttpRequest) -> HttpResponse:
    """Assign a DEP profile to devices: POSTed from a list's selection or typed serials (GET
    shows the form, e.g. from a profile's page); the answer is Apple's result per serial."""
    back = back_to(request, reverse("dep-devices"))
    if request.method == "POST":
        form = AssignForm(request.POST)
        if form.is_valid():
            profile, serials = form.cleaned_data["profile"], form.cleaned_data["all_serials"]
            acting_here(request)
            try:
                results = assign_profile(profile, serials, actor=request.user)
            except DepProfileError as exc:
                form.add_error("profile", str(exc))
            except (DepError, DepTokenError) as exc:
                form.add_error(None, f"Apple refused or could not be reached: {exc}")
            else:
                return results_page(
                    request,
                    title=f"{profile.name} assigned",
                    what="Assignment",
                    results=results,
                    back=back,
                    profile=profile,
                )
        status = 400
    else:
        initial = {"profile": request.GET.get("profile"), "serials": request.GET.getlist("device")}
        form, status = AssignForm(initial=initial), 200
    return render(
        request,
        "enrollment/dep/assign.html",
        {"title": "Assign a DEP profile", "form": form, "next": back},
        status=status,
    )
