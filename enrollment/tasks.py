"""Periodic work of the enrollment app, run by Celery workers (scheduled by celery beat)."""

from celery import shared_task
from django.conf import settings

from .renewal import renew_expiring_identities


@shared_task
def renew_device_identities() -> dict:
    """Renew device identities that expire within the first warning threshold."""
    return renew_expiring_identities(max(settings.MDM_EXPIRY_WARNING_DAYS or [30]))
