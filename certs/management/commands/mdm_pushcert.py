"""`mdm_pushcert`: import, show, and request the APNs push certificate, or make a demo one
(certs.pushcert, certs.pushcert_csr, certs.pushcert_demo; the Certificates page and the
quickstart call the same functions)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from certs import pushcert, pushcert_csr, pushcert_demo
from certs.pushcert import PushCertError
from devices.topics import devices_on_other_topic

DEMO_NOTE = (
    "DEMO push certificate, not from Apple: pushes go only to the local APNs stand-in "
    "(MDM_APNS_URL), never to Apple; import Apple's certificate for real devices"
)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the {what} {path}: {exc.strerror}") from exc


class Command(BaseCommand):
    help = (
        "The APNs push certificate: import Apple's certificate (PEM + key, or PKCS#12), show the "
        "active one, make the customer CSR (its key stays in the portal), or sign a CSR as the "
        "MDM vendor into the PushCertWebRequest file for https://identity.apple.com/pushcert; "
        "or make a demo certificate for trying the portal without Apple."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        imp = sub.add_parser(
            "import",
            help="import the push certificate Apple issued",
            description=(
                "Import the push certificate: --cert (PEM or DER) with --key, or --cert alone "
                "when the key is in the same PEM file or the certificate answers a CSR made by "
                "`mdm_pushcert csr`; or --p12 with --password. Replaces the active certificate. "
                "A certificate with another topic than the enrolled devices' is refused unless "
                "--force."
            ),
        )
        source = imp.add_mutually_exclusive_group(required=True)
        source.add_argument("--cert", metavar="PEM", help="the push certificate")
        source.add_argument("--p12", metavar="FILE", help="a PKCS#12 file with certificate and key")
        imp.add_argument("--key", metavar="PEM", help="the certificate's private key")
        imp.add_argument("--password", help="password of the PKCS#12 file or of the key")
        imp.add_argument(
            "--force",
            action="store_true",
            help="accept a different topic even though enrolled devices would be orphaned",
        )

        sub.add_parser("show", help="the active push certificate: topic, expiry, days left, kind")

        demo = sub.add_parser(
            "demo",
            help="make a demo push certificate (no Apple): pushes go only to MDM_APNS_URL",
            description=(
                "Make (or keep) a self-signed push certificate shaped like Apple's, for a demo "
                "with a local APNs stand-in and simulated devices (scripts/quickstart.sh --demo). "
                "Pushes with it go only to MDM_APNS_URL, never to Apple. Refused when a "
                "certificate from Apple is imported; importing one later replaces the demo "
                "certificate (its devices must enroll again)."
            ),
        )
        demo.add_argument(
            "--force",
            action="store_true",
            help="accept a new topic even though enrolled devices listen to another one",
        )
        demo.add_argument(
            "--keep-real",
            action="store_true",
            help="when a certificate from Apple is imported, keep it and succeed (the "
            "quickstart's --demo); without this option that is an error",
        )

        csr = sub.add_parser(
            "csr",
            help="create the customer key and CSR (the key never leaves the portal)",
        )
        csr.add_argument("--out", metavar="FILE", help="write the CSR PEM here (default: stdout)")
        csr.add_argument("--cn", help="the CSR's common name")
        csr.add_argument("--country", help="two-letter country code")
        csr.add_argument("--email", help="contact e-mail address")

        sign = sub.add_parser(
            "sign-csr",
            help="vendor step: wrap a CSR into the PushCertWebRequest file",
            description=(
                "Sign a customer's CSR with the MDM vendor certificate (Apple's 'MDM CSR' "
                "certificate) and write the base64 PushCertWebRequest to upload to "
                "https://identity.apple.com/pushcert. --chain should hold Apple's WWDR "
                "intermediate (G3) and the Apple Inc. Root, which Apple wants in the chain."
            ),
        )
        sign.add_argument("--csr", required=True, metavar="FILE", help="the customer's CSR")
        sign.add_argument("--vendor-cert", required=True, metavar="PEM", help="vendor certificate")
        sign.add_argument("--vendor-key", required=True, metavar="PEM", help="vendor private key")
        sign.add_argument("--vendor-key-password", help="password of the vendor key")
        sign.add_argument("--chain", metavar="PEM", help="Apple's intermediate and root, PEM")
        sign.add_argument(
            "--digest",
            choices=sorted(pushcert_csr.SIGNATURE_DIGESTS),
            default=pushcert_csr.DEFAULT_SIGNATURE_DIGEST,
            help="signature digest (default sha256, what Apple accepts today; sha1 only for "
            "an old vendor certificate)",
        )
        sign.add_argument("--out", metavar="FILE", help="write the request here (default: stdout)")

    def handle(self, *args, **options):
        handler = {
            "import": self._import,
            "show": self._show,
            "demo": self._demo,
            "csr": self._csr,
            "sign-csr": self._sign_csr,
        }[options["subcommand"]]
        try:
            handler(options)
        except PushCertError as exc:
            raise CommandError(str(exc)) from exc

    def _import(self, options) -> None:
        result = pushcert.import_files(
            certificate=_read(options["cert"], "certificate") if options["cert"] else None,
            key=_read(options["key"], "private key") if options["key"] else None,
            pkcs12_data=_read(options["p12"], "PKCS#12 file") if options["p12"] else None,
            password=options["password"],
            orphaned_devices=devices_on_other_topic,
            force=options["force"],
            actor="mdm_pushcert",
        )
        first, *rest = pushcert.describe_import(result)
        self.stdout.write(first)
        for line in rest:
            self.stdout.write(f"  {line}")
        if result.orphaned:
            warning = pushcert.orphan_warning(result.orphaned, result.replaced_demo)
            self.stderr.write(f"WARNING: {warning}.")

    def _demo(self, options) -> None:
        real = pushcert.active_push_certificate()
        if options["keep_real"] and real is not None and not real.demo:
            self.stdout.write(
                f"a push certificate from Apple is imported ({real.topic}): kept, no demo "
                "certificate made"
            )
            return
        made = pushcert_demo.ensure_demo_push_certificate(
            orphaned_devices=devices_on_other_topic, force=options["force"], actor="mdm_pushcert"
        )
        cert = made.certificate
        what = "demo push certificate created" if made.created else "demo push certificate kept"
        self.stdout.write(f"{what}: {cert.topic}")
        self.stdout.write(f"  valid until {cert.not_after:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(f"  {DEMO_NOTE}")

    def _show(self, options) -> None:
        status = pushcert.push_certificate_status()
        if status is None:
            raise CommandError(
                "no push certificate yet: import one with `mdm_pushcert import`, or start with "
                "`mdm_pushcert csr`"
            )
        self.stdout.write(f"topic:      {status['topic']}")
        self.stdout.write(f"kind:       {status['kind']}")
        if status["demo"]:
            self.stdout.write(f"demo:       yes: {DEMO_NOTE}")
        self.stdout.write(f"subject:    {status['subject']}")
        self.stdout.write(f"not after:  {status['not_after']:%Y-%m-%d %H:%M} UTC")
        expired = "  (EXPIRED: devices can no longer be woken)" if status["expired"] else ""
        self.stdout.write(f"days left:  {status['days_left']}{expired}")
        self.stdout.write(f"sha256:     {status['sha256']}")

    def _csr(self, options) -> None:
        request = pushcert_csr.create_push_csr(
            common_name=options["cn"],
            country=options["country"],
            email=options["email"],
            actor="mdm_pushcert",
        )
        if options["out"]:
            Path(options["out"]).write_text(request.csr_pem)
            self.stdout.write(f"CSR written to {options['out']}")
            self.stdout.write(f"  public key sha256 {request.public_key_sha256}")
            self.stdout.write(
                "  its private key stays in the portal; have the CSR signed by the MDM vendor "
                f"(`mdm_pushcert sign-csr`), upload the result to {pushcert_csr.APPLE_PUSH_PORTAL}"
                ", then `mdm_pushcert import --cert <Apple's .pem>`"
            )
        else:
            self.stdout.write(request.csr_pem, ending="")

    def _sign_csr(self, options) -> None:
        chain = _read(options["chain"], "chain file") if options["chain"] else None
        content = pushcert_csr.sign_push_csr(
            _read(options["csr"], "CSR"),
            _read(options["vendor_cert"], "vendor certificate"),
            _read(options["vendor_key"], "vendor key"),
            chain_pem=chain,
            digest=options["digest"],
            vendor_key_password=options["vendor_key_password"],
            actor="mdm_pushcert",
        )
        if options["out"]:
            Path(options["out"]).write_bytes(content)
            self.stdout.write(
                f"PushCertWebRequest written to {options['out']} (signed with {options['digest']})"
                f": upload it at {pushcert_csr.APPLE_PUSH_PORTAL}"
            )
        else:
            self.stdout.write(content.decode())
