from django.conf import settings
from django.views.decorators.csrf import csrf_exempt

from devices.protocol import serve_device_request

from .server import route


@csrf_exempt
def connect(request):
    """PUT /mdm/connect: the server URL (command reports, and check-ins without a CheckInURL)."""
    return serve_device_request(request, settings.MDM_CONNECT_MAX_BYTES, route(request))
