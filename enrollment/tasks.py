"""Periodic work of the enrollment app, run by Celery workers (scheduled by celery beat)."""

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from .dep_models import DepServer
from .dep_sync import sync_all, sync_server
from .renewal import renew_expiring_identities


@shared_task
def renew_device_identities() -> dict:
    """Renew device identities that expire within the first warning threshold."""
    return renew_expiring_identities(max(settings.MDM_EXPIRY_WARNING_DAYS or [30]))


@shared_task
def sync_dep_servers() -> list[dict]:
    """Sync the DEP servers that are due (MDM_DEP_SYNC_MINUTES): one outcome per server; a
    server that fails is recorded and the others still run."""
    return [asdict(outcome) for outcome in sync_all(due_only=True)]


@shared_task
def sync_dep_server(server_id: int, actor: str = "system") -> dict | None:
    """One DEP server's sync on demand, in a worker (the UI's "sync now" need not wait for
    Apple); None when the server is gone."""
    server = DepServer.objects.filter(pk=server_id).first()
    return None if server is None else asdict(sync_server(server, actor=actor))
