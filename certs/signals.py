"""What certs announces to the layers above, which answer (devices binds, enrollment links).

`certificate_issued(certificate, challenge, renews)`: our CA issued an identity certificate,
inside the issuing transaction. `challenge` is the one-time SCEP challenge that authorised it
(None otherwise), `renews` the certificate it renews (a SCEP renewal). A receiver that raises
undoes the issuance.

`certificate_expiring(entry)`: a certificate the portal depends on (an entry of
`certs.expiry.certificate_inventory`) crossed a warning threshold or expired; sent once per
threshold by the certificate expiry sweep. webhooks announces it (portal.certificate.expiring).
"""

from django.dispatch import Signal

certificate_issued = Signal()
certificate_expiring = Signal()
