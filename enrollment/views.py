from django.http import HttpResponse


def enroll_page(request, token: str):
    """GET /enroll/<token>/: what will happen, and the download button."""
    return HttpResponse("not available yet\n", status=404, content_type="text/plain")


def enroll_profile(request, token: str):
    """GET /enroll/<token>/profile: the signed enrollment .mobileconfig."""
    return HttpResponse("not available yet\n", status=404, content_type="text/plain")
