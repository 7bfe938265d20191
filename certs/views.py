from django.http import HttpResponse


def scep(request):
    """GET/POST /scep: the SCEP server (RFC 8894)."""
    return HttpResponse("SCEP is not available yet\n", status=404, content_type="text/plain")
