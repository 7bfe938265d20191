"""`/ping`: the portal's web process answers, touching nothing else (no database, no broker).

A load balancer's liveness check, and the benchmarks' floor: the cheapest request Django can
serve through the same middleware and server as the device endpoints."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok\n", content_type="text/plain")
