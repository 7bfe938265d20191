"""The client's address as the TLS proxy saw it.

Behind serve.sh's nginx, gunicorn listens on a unix socket, so REMOTE_ADDR says nothing about
the device or browser. nginx always sets the header MDM_REAL_IP_HEADER names (X-Real-Ip) to
the address it accepted the connection from, overwriting whatever a client sent; the portal
reads it only when told to, like MDM_CLIENT_CERT_HEADER.
"""

from django.conf import settings


def meta_key(header: str) -> str:
    """Where a request header lands in request.META (X-Real-Ip -> HTTP_X_REAL_IP)."""
    return "HTTP_" + header.upper().replace("-", "_")


class RealClientAddressMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        header = settings.MDM_REAL_IP_HEADER
        self.meta_key = meta_key(header) if header else ""

    def __call__(self, request):
        if self.meta_key:
            address = request.META.get(self.meta_key, "").strip()
            if address:
                request.META["REMOTE_ADDR"] = address
        return self.get_response(request)
