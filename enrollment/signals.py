"""What enrollment announces to the layer above (webhooks), inside the transaction:

- `enrollment_created(enrollment)`: a new enrollment link exists (portal.enrollment.created).
"""

from django.dispatch import Signal

enrollment_created = Signal()
