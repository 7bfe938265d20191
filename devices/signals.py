"""What the check-in announces to the layers above, which answer; all inside the check-in's
transaction, so a receiver that raises undoes the whole message.

- `device_authenticating(device, certificate)`: an Authenticate, before the device is saved;
  receivers may set what the enrollment decides (AccessRights, group). enrollment answers.
- `device_authenticated(device, certificate)`: after the Authenticate is saved: a new
  enrollment starts. commands cancels what was queued for the earlier one; enrollment records
  the device's enrollment.
- `device_enrolled(device)`: the first TokenUpdate of an enrollment: the device can be pushed
  to. commands queues the initial inventory.
- `device_awaiting_configuration(device)`: a TokenUpdate with AwaitingConfiguration true,
  after `device_enrolled` when it is the enrollment's first: the device is in Setup Assistant
  (Automated Device Enrollment, its DEP profile set to await configuration) and goes on only
  after DeviceConfigured. Sent for every such TokenUpdate: receivers act once per enrollment.
  enrollment answers: the device's library profiles, then DeviceConfigured.
- `device_checked_out(device)`: CheckOut: the device is no longer managed. commands cancels
  what is still queued.
- `checkin_received(message_type, udid, message, request)`: any check-in message the portal
  accepted (every Authenticate, every TokenUpdate ...), after its handler, with the
  DeviceRequest it came in (raw body, query parameters). webhooks writes its outbox rows.
"""

from django.dispatch import Signal

device_authenticating = Signal()
device_authenticated = Signal()
device_enrolled = Signal()
device_awaiting_configuration = Signal()
device_checked_out = Signal()
checkin_received = Signal()
