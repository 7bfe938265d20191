"""What enrollment announces to the layer above (webhooks), inside the transaction:

- `enrollment_created(enrollment)`: a new enrollment link exists (portal.enrollment.created).
- `membership_changed(device_ids)`: devices joined or left a group (membership.py), so what
  their group gives them may differ: declarations answers (a device's declaration set
  includes its group's).
"""

from django.dispatch import Signal

enrollment_created = Signal()
membership_changed = Signal()
