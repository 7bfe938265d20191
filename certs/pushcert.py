"""The APNs push certificate: the topic every enrolled device listens to."""

from .models import PushCertificate


def active_push_certificate() -> PushCertificate | None:
    return PushCertificate.objects.filter(active=True).order_by("-created_at").first()


def active_topic() -> str | None:
    cert = active_push_certificate()
    return cert.topic if cert else None
