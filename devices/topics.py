"""The push topics enrolled devices listen to: what a push-certificate import must not break."""

from django.db.models import Q

from .models import Device


def devices_on_other_topic(topic: str) -> int:
    """Enrolled devices listening to a topic other than `topic`: a push certificate for `topic`
    cannot wake them, so they would have to enroll again."""
    return (
        Device.objects.filter(state=Device.State.ENROLLED)
        .exclude(Q(topic=topic) | Q(topic=""))
        .count()
    )
