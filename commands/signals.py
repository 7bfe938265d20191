"""What the queue announces to the layers above, inside the transaction that caused it.

- `report_received(device, report, row, request)`: a managed device's server-URL request (a
  command's status, or Idle), after the status was recorded; `row` is the QueuedCommand it
  answers (None for Idle or an unknown CommandUUID), `request` the DeviceRequest (raw body,
  query parameters) or None. webhooks writes its outbox rows (mdm.Connect).
- `pushes_failed(failures)`: pushes APNs refused, or that could not be sent; `failures` is a
  list of (udid, status, reason), status 0 when not attempted. webhooks announces them.
"""

from django.dispatch import Signal

report_received = Signal()
pushes_failed = Signal()
