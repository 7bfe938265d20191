from django.conf import settings
from django.views.decorators.csrf import csrf_exempt

from devices.http import serve_http

from .server import handle_connect


@csrf_exempt
def connect(request):
    """PUT /mdm/connect: the server URL (command reports, and check-ins without a CheckInURL)."""
    # handle_connect reads revocation itself, in the statement that locks the device.
    return serve_http(
        request, settings.MDM_CONNECT_MAX_BYTES, handle_connect, handler_checks_revocation=True
    )
