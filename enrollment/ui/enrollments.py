"""/enrollments/: enrollment links (enrollment.enrollments), their QR codes and profiles."""

import segno
from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from certs.pushcert_demo import real_push_certificate_warning
from commands.catalog import ALL_RIGHTS
from mdm_portal.roles import OPERATOR, VIEWER, role_required

from ..enrollments import EnrollmentError, create_enrollment, deactivate_enrollment, enrollment_link
from ..mobileconfig import (
    EnrollmentUnavailable,
    enrollment_profile_bytes,
    identity_in_words,
    unavailable_reason,
)
from ..models import DeviceEnrollment, Enrollment
from ..views import PROFILE_CONTENT_TYPE, keep_private, profile_filename, rights_in_words
from .common import acting, bound, confirm, paginate, submit
from .forms import EnrollmentForm
from .tables import STATE_BADGES, STATE_WORDS, EnrolledDeviceTable, EnrollmentTable


def qr_svg(link: str) -> str:
    """The link as a QR code, an inline SVG (segno) that scales with its box."""
    code = segno.make(link, error="m", micro=False)
    svg = code.svg_inline(scale=5, border=2, svgclass="qr", lineclass="qrline", omitsize=True)
    return mark_safe(svg.replace("<svg ", '<svg role="img" aria-label="QR code of the link" ', 1))  # noqa: S308 - segno's own markup


@role_required(VIEWER)
def enrollment_list(request):
    enrollments = Enrollment.objects.select_related("group").annotate(device_count=Count("devices"))
    return render(
        request,
        "enrollment/enrollment_list.html",
        {"title": "Enrollments", "table": paginate(request, EnrollmentTable(enrollments))},
    )


@role_required(OPERATOR)
def enrollment_new(request):
    form = bound(request, EnrollmentForm)

    def create(data):
        enrollment = create_enrollment(form.spec(), **acting(request))
        messages.success(
            request, f"Enrollment {enrollment.name} created: share its link or QR code."
        )
        return redirect("enrollment-detail", pk=enrollment.pk)

    # The form runs the same checks first: an EnrollmentError here means a race, not a typo.
    answer, status = submit(form, create, errors=EnrollmentError)
    return answer or render(
        request,
        "enrollment/enrollment_form.html",
        {
            "title": "New enrollment",
            "form": form,
            "push_warning": real_push_certificate_warning(),
        },
        status=status,
    )


def _detail(request, enrollment: Enrollment, *, error: str = "", status: int = 200):
    link = enrollment_link(enrollment)
    reason = unavailable_reason(enrollment, timezone.now())
    devices = DeviceEnrollment.objects.filter(enrollment=enrollment).select_related("device")
    return render(
        request,
        "enrollment/enrollment_detail.html",
        {
            "title": enrollment.name,
            "enrollment": enrollment,
            "link": link,
            "qr": qr_svg(link),
            "state": STATE_WORDS[reason],
            "state_badge": STATE_BADGES[reason],
            "usable": reason is None,
            "identity_words": identity_in_words(enrollment),
            "rights": rights_in_words(enrollment.access_rights),
            "withheld": rights_in_words(ALL_RIGHTS & ~enrollment.access_rights),
            "devices": paginate(request, EnrolledDeviceTable(devices)),
            "error": error,
        },
        status=status,
    )


@role_required(VIEWER)
def enrollment_detail(request, pk: int):
    return _detail(request, get_object_or_404(Enrollment.objects.select_related("group"), pk=pk))


@require_POST
@role_required(OPERATOR)
def enrollment_profile(request, pk: int):
    """The signed enrollment profile, made and counted exactly as the OTA link's download."""
    enrollment = get_object_or_404(Enrollment, pk=pk)
    try:
        signed = enrollment_profile_bytes(
            enrollment, actor=request.user, client=acting(request)["address"] or ""
        )
    except EnrollmentUnavailable as exc:
        return _detail(request, enrollment, error=f"No profile was made: {exc}.", status=409)
    response = HttpResponse(signed, content_type=PROFILE_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{profile_filename(enrollment.name)}"'
    return keep_private(response)


@role_required(OPERATOR)
def enrollment_deactivate(request, pk: int):
    enrollment = get_object_or_404(Enrollment, pk=pk)
    detail = reverse("enrollment-detail", args=[pk])
    if request.method == "POST":
        if deactivate_enrollment(enrollment, **acting(request)):
            messages.success(request, f"Enrollment {enrollment.name} is turned off.")
        else:
            messages.info(request, f"Enrollment {enrollment.name} was already turned off.")
        return redirect(detail)
    return confirm(
        request,
        title=f"Turn off {enrollment.name}?",
        action=reverse("enrollment-deactivate", args=[pk]),
        button="Turn the link off",
        cancel=detail,
        refusal=None if enrollment.active else "This enrollment is already turned off.",
        consequences=[
            "Its link and QR code stop working for good: opening them says the link was "
            "turned off, and no profile is handed out.",
            "Devices it already enrolled stay enrolled and managed.",
        ],
    )
