"""The device side of declarations over HTTP: an asset's data (GET /mdm/assets/<public_id>),
authenticated as check-in is (devices.downloads). The DeclarativeManagement check-in itself
arrives at /mdm/checkin and /mdm/connect like every check-in message."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from devices.http import serve_http_download

from .assets import asset_reply


@require_http_methods(["GET", "HEAD"])
def asset_data(request: HttpRequest, public_id: str) -> HttpResponse:
    return serve_http_download(request, lambda device, _request: asset_reply(device, public_id))
