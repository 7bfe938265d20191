"""`POST /dep/enroll`: the DEP profile's URL, where a device in Setup Assistant sends its
MachineInfo and gets its enrollment profile (enrollment/dep_enroll.py decides; this only
speaks HTTP)."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from devices.protocol import ProtocolError

from .dep_enroll import MAX_MACHINE_INFO_BYTES, serve_machine_info
from .views import PROFILE_CONTENT_TYPE, keep_private


@csrf_exempt  # a device, not a browser: the MachineInfo's signature is what authenticates it
@require_POST
def dep_enroll(request) -> HttpResponse:
    # At most one byte over the limit is read: serve_machine_info refuses it with 413.
    body = request.read(MAX_MACHINE_INFO_BYTES + 1)
    try:
        profile = serve_machine_info(body, client=request.META.get("REMOTE_ADDR", ""))
    except ProtocolError as exc:
        refusal = HttpResponse(
            exc.reason + "\n", status=exc.status, content_type="text/plain; charset=utf-8"
        )
        return keep_private(refusal)
    response = HttpResponse(profile, content_type=PROFILE_CONTENT_TYPE)
    response["Content-Disposition"] = 'attachment; filename="enrollment.mobileconfig"'
    return keep_private(response)
