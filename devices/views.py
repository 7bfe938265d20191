from django.conf import settings
from django.views.decorators.csrf import csrf_exempt

from .checkin import handle_checkin
from .http import serve_http


@csrf_exempt
def checkin(request):
    """PUT /mdm/checkin: the check-in URL."""
    return serve_http(request, settings.MDM_CHECKIN_MAX_BYTES, handle_checkin)
