"""How webhooks answers what the layers below announce, connected by WebhooksConfig.ready.
Each writes outbox rows inside the announcing transaction (webhooks.outbox)."""

from django.db.models.signals import post_delete, post_save

from certs.signals import certificate_expiring
from commands.signals import pushes_failed, report_received
from devices.models import Device
from devices.signals import checkin_received
from enrollment.enrollments import enrollment_link
from enrollment.signals import enrollment_created

from . import events
from .models import MDM_TOPICS, Webhook
from .outbox import Event, emit, emit_many, forget_none_active


def _request_parts(request) -> tuple[bytes | None, dict]:
    if request is None:
        return None, {}
    return request.body, request.query


def on_checkin(sender, message_type, udid, message, request, **kwargs) -> None:
    topic = f"mdm.{message_type}"
    if topic not in MDM_TOPICS:
        return
    raw, params = _request_parts(request)
    emit(topic, lambda: events.checkin_event(message, raw, params), udid=udid)


def on_report(sender, device: Device, report, row, request, **kwargs) -> None:
    raw, params = _request_parts(request)
    emit("mdm.Connect", lambda: events.acknowledge_event(report, raw, params), udid=device.udid)


def on_pushes_failed(sender, failures, kind, at, **kwargs) -> None:
    emit_many(
        [
            Event(
                "portal.push.failed",
                {
                    "udid": udid,
                    "status": status,
                    "reason": reason,
                    "kind": kind,
                    "at": events.rfc3339(at),
                },
                udid=udid,
            )
            for udid, status, reason in failures
        ]
    )


def on_enrollment_created(sender, enrollment, **kwargs) -> None:
    emit(
        "portal.enrollment.created",
        {
            "enrollment": {
                "id": enrollment.pk,
                "name": enrollment.name,
                "link": enrollment_link(enrollment),
                "access_rights": enrollment.access_rights,
                "identity": enrollment.identity,
                "group": enrollment.group.name if enrollment.group_id else None,
                "expires_at": events.rfc3339(enrollment.expires_at)
                if enrollment.expires_at
                else None,
                "max_uses": enrollment.max_uses,
                "created_by": enrollment.created_by,
            }
        },
    )


def on_certificate_expiring(sender, entry, **kwargs) -> None:
    not_after = entry.get("not_after")
    emit(
        "portal.certificate.expiring",
        {
            "certificate": {
                "kind": entry["kind"],
                "name": entry.get("name", ""),
                "subject": entry.get("subject", ""),
                "not_after": events.rfc3339(not_after) if not_after else None,
                "days_left": entry.get("days_left"),
                "severity": entry["severity"],
                "threshold": entry.get("threshold"),
            }
        },
    )


def connect() -> None:
    post_save.connect(forget_none_active, sender=Webhook, dispatch_uid="webhooks.saved")
    post_delete.connect(forget_none_active, sender=Webhook, dispatch_uid="webhooks.deleted")
    checkin_received.connect(on_checkin, dispatch_uid="webhooks.checkin")
    report_received.connect(on_report, dispatch_uid="webhooks.report")
    pushes_failed.connect(on_pushes_failed, dispatch_uid="webhooks.push-failed")
    enrollment_created.connect(on_enrollment_created, dispatch_uid="webhooks.enrollment")
    certificate_expiring.connect(on_certificate_expiring, dispatch_uid="webhooks.expiring")
