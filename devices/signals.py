"""What devices announces to the layers above, which answer; all inside the sender's
transaction, so a receiver that raises undoes the whole change.

- `device_authenticating(device, certificate)`: an Authenticate, before the device is saved;
  receivers may set what the enrollment decides (AccessRights, group). enrollment answers.
- `device_authenticated(device, certificate)`: after the Authenticate is saved: a new
  enrollment starts. commands cancels what was queued for the earlier one; enrollment records
  the device's enrollment.
- `device_enrolled(device)`: the first TokenUpdate of an enrollment: the device can be pushed
  to. commands queues the initial inventory.
- `device_checked_out(device)`: CheckOut: the device is no longer managed. commands cancels
  what is still queued.
- `group_membership_changed(group, moved, by)`: devices were moved into `group` (None: out of
  any group) by `by` (a name); `moved` maps each moved device's pk to the pk of the group it
  left (or None).
  Sent by devices.groups inside its transaction; enrollment keeps the profile library's
  group assignments true for them.
"""

from django.dispatch import Signal

device_authenticating = Signal()
device_authenticated = Signal()
device_enrolled = Signal()
device_checked_out = Signal()
group_membership_changed = Signal()
