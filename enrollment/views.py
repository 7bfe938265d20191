"""The OTA enrollment page and its profile download (`/enroll/<token>/`, `.../profile`).

Thin views: `enrollment.mobileconfig` decides whether a profile can be handed out and builds it.
Every answer that is not a profile is a human page with the status that fits: 404 for a link
that does not exist, 410 for one that no longer works, 503 while the portal cannot enroll.
"""

import logging
import re

from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET

from commands.catalog import ACCESS_RIGHTS_IN_WORDS, ALL_RIGHTS

from .mobileconfig import (
    EnrollmentUnavailable,
    check_available,
    enrollment_profile_bytes,
    tls_trust_certificates,
)
from .models import Enrollment

log = logging.getLogger(__name__)

PROFILE_CONTENT_TYPE = "application/x-apple-aspen-config"


# (title, explanation, status) of every page that is not the enrollment page.
PAGES: dict[str, tuple[str, str, int]] = {
    "unknown": (
        "This enrollment link is not valid",
        "Check that you opened the whole link you were given, or ask your IT department "
        "for a new one.",
        404,
    ),
    EnrollmentUnavailable.INACTIVE: (
        "This enrollment link has been turned off",
        "It can no longer be used to enroll a device. Ask your IT department for a new link.",
        410,
    ),
    EnrollmentUnavailable.EXPIRED: (
        "This enrollment link has expired",
        "It can no longer be used to enroll a device. Ask your IT department for a new link.",
        410,
    ),
    EnrollmentUnavailable.USED_UP: (
        "This enrollment link has been used up",
        "It has enrolled as many devices as it was meant to. Ask your IT department for a "
        "new link.",
        410,
    ),
    EnrollmentUnavailable.NO_PUSH_CERTIFICATE: (
        "This portal has no push certificate yet",
        "Devices cannot be enrolled until an administrator imports the Apple push "
        "certificate, because a device enrolled without it could never be reached. "
        "Please try again later, or tell your IT department.",
        503,
    ),
    EnrollmentUnavailable.MISCONFIGURED: (
        "Enrollment is not available right now",
        "The portal is not set up to enroll devices with this link yet. Please tell your IT "
        "department; they can see the reason in the portal's log.",
        503,
    ),
}


def rights_in_words(access_rights: int) -> list[str]:
    return [words for bit, words in ACCESS_RIGHTS_IN_WORDS if access_rights & bit]


def profile_filename(name: str) -> str:
    """A safe ASCII file name for the enrollment's profile."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:100] or "enrollment"
    return f"{stem}.mobileconfig"


def keep_private(response: HttpResponse) -> HttpResponse:
    """The link is a secret and the profile a one-time credential: never cached or leaked."""
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    context = {"organization": settings.MDM_ORGANIZATION, **context}
    body = render_to_string(template, context, request=request)
    return keep_private(HttpResponse(body, status=status, content_type="text/html; charset=utf-8"))


def _unavailable(request, reason: str) -> HttpResponse:
    title, explanation, status = PAGES[reason]
    return _page(
        request,
        "enrollment/unavailable.html",
        {"title": title, "explanation": explanation},
        status,
    )


def _reason(enrollment: Enrollment, exc: EnrollmentUnavailable) -> str:
    """The page for `exc`; what an administrator must fix goes to the log, not to the page."""
    if exc.reason == EnrollmentUnavailable.MISCONFIGURED:
        log.error("enrollment %r (id %s) cannot enroll: %s", enrollment.name, enrollment.pk, exc)
    return exc.reason


def _enrollment(token: str) -> Enrollment | None:
    if not token or len(token) > 64:
        return None
    return Enrollment.objects.filter(token=token).first()


def has_tls_trust() -> bool:
    """Whether the profile carries the server's TLS CA (a private chain), for the page."""
    try:
        return bool(tls_trust_certificates())
    except EnrollmentUnavailable:
        return False


@require_GET
def enroll_page(request, token: str):
    """GET /enroll/<token>/: what will happen, and the download button."""
    enrollment = _enrollment(token)
    if enrollment is None:
        return _unavailable(request, "unknown")
    try:
        check_available(enrollment)
    except EnrollmentUnavailable as exc:
        return _unavailable(request, _reason(enrollment, exc))
    rights = enrollment.access_rights
    return _page(
        request,
        "enrollment/enroll.html",
        {
            "title": f"Enroll this device with {settings.MDM_ORGANIZATION}",
            "enrollment": enrollment,
            "rights": rights_in_words(rights),
            "all_rights": rights & ALL_RIGHTS == ALL_RIGHTS,
            "acme": enrollment.identity == Enrollment.Identity.ACME,
            "scep": enrollment.identity == Enrollment.Identity.SCEP,
            "tls_chain": has_tls_trust(),
            "profile_url": reverse("enroll-profile", args=[enrollment.token]),
        },
    )


def _client(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


@require_GET
def enroll_profile(request, token: str):
    """GET /enroll/<token>/profile: the signed enrollment .mobileconfig."""
    enrollment = _enrollment(token)
    if enrollment is None:
        return _unavailable(request, "unknown")
    try:
        signed = enrollment_profile_bytes(enrollment, actor="ota", client=_client(request))
    except EnrollmentUnavailable as exc:
        return _unavailable(request, _reason(enrollment, exc))
    response = HttpResponse(signed, content_type=PROFILE_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{profile_filename(enrollment.name)}"'
    return keep_private(response)
