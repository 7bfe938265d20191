"""HTTP for the ACME server under /acme/ (RFC 8555, with Apple's device attestation).

The protocol is in plain modules (certs/acme_protocol.py and the handlers it calls); these
views only turn a Django request into an AcmeRequest and the AcmeReply into a response.

The URLs the server hands out, and the one the JWS `url` must equal, are those the client
addressed: the host is the request's Host header (checked against ALLOWED_HOSTS; serve.sh's
nginx passes the client's `$http_host`, port included), the path is the request's. The
scheme is the request's, except behind the TLS proxy: nginx ends TLS and talks plain HTTP to
gunicorn on a unix socket, so Django sees http while the device used https. An https
MDM_PUBLIC_URL says the portal is published only through that proxy, so the scheme is https
then. (Django's SECURE_PROXY_SSL_HEADER, if set, makes request.is_secure() say so too.)
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import acme_protocol as protocol
from .acme_protocol import MAX_REQUEST_BYTES, AcmeRequest, Endpoint


def client_url(request: HttpRequest, path: str) -> str:
    """`path` as an absolute URL on the origin the client used (see the module docstring)."""
    url = request.build_absolute_uri(path)
    if url.startswith("http://") and settings.MDM_PUBLIC_URL.startswith("https://"):
        url = "https://" + url.removeprefix("http://")
    return url


def _body(request: HttpRequest) -> bytes:
    # Read at most one byte more than the limit: the protocol answers 413 above it, and a
    # huge body is never held in memory.
    if request.method != "POST":
        return b""
    return request.read(MAX_REQUEST_BYTES + 1)


def _acme_request(request: HttpRequest) -> AcmeRequest:
    return AcmeRequest(
        method=request.method or "",
        url=client_url(request, request.get_full_path()),
        origin=client_url(request, "/").removesuffix("/"),
        body=_body(request),
        content_type=request.META.get("CONTENT_TYPE", ""),
        remote_addr=request.META.get("REMOTE_ADDR", ""),
    )


def _view(endpoint: Endpoint):
    @csrf_exempt  # requests are JWS signed by the account key, which also stops replays
    def view(request: HttpRequest, pk: int | None = None) -> HttpResponse:
        reply = protocol.serve(_acme_request(request), endpoint, pk)
        response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
        for name, value in reply.headers.items():
            response[name] = value
        if reply.links:
            response["Link"] = ", ".join(reply.links)
        return response

    return view


directory = _view(protocol.DIRECTORY)
new_nonce = _view(protocol.NEW_NONCE)
new_account = _view(protocol.NEW_ACCOUNT)
account = _view(protocol.ACCOUNT)
account_orders = _view(protocol.ACCOUNT_ORDERS)
new_order = _view(protocol.NEW_ORDER)
order = _view(protocol.ORDER)
finalize = _view(protocol.FINALIZE)
authorization = _view(protocol.AUTHORIZATION)
challenge = _view(protocol.CHALLENGE)
certificate = _view(protocol.CERTIFICATE)
