"""`mdm_tls`: the server's TLS chain (certs/server_tls.py): show it, check it, export it."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from certs import server_tls
from certs.expiry import warning_days
from certs.models import CertificateAuthority


class Command(BaseCommand):
    help = (
        "The server's TLS chain: `show` it (source, certificates, days left, private or "
        "public, warnings), `check` it (warnings only), or `export` the portal's own chain and "
        "key, and the device-identity CA certificates, for the TLS proxy (scripts/serve.sh)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        sub.add_parser("show", help="the chain in use, with days left and warnings")
        sub.add_parser("check", help="print one `warning: ...` line per problem (exit 0)")
        export = sub.add_parser(
            "export", help="write PEM files for the TLS proxy (each mode 0600, atomically)"
        )
        export.add_argument("--chain", metavar="FILE", help="the portal's own chain")
        export.add_argument("--key", metavar="FILE", help="its private key")
        export.add_argument(
            "--client-ca",
            metavar="FILE",
            help="the device-identity CA certificates, which the proxy names when it asks "
            "devices for their certificate",
        )

    def handle(self, *args, **options):
        try:
            getattr(self, "_" + options["subcommand"])(options)
        except server_tls.ServerTLSError as exc:
            raise CommandError(str(exc)) from exc

    def _warnings(self) -> list[str]:
        chain = server_tls.served_chain()
        return server_tls.chain_warnings(chain, server_tls.public_host(), max(warning_days()))

    def _show(self, options) -> None:
        source = server_tls.chain_file()
        chain = server_tls.served_chain()
        self.stdout.write("source:  " + (source or "the portal's own (mdm_init)"))
        self.stdout.write(f"host:    {server_tls.public_host()}")
        if chain:
            kind = "public" if server_tls.is_public(chain) else "private"
            self.stdout.write(f"chain:   {kind}")
        now = timezone.now()
        for index, certificate in enumerate(chain):
            days = (certificate.not_valid_after_utc - now).days
            self.stdout.write(f"[{index}] {certificate.subject.rfc4514_string()}")
            self.stdout.write(f"    issuer {certificate.issuer.rfc4514_string()}")
            self.stdout.write(
                f"    valid until {certificate.not_valid_after_utc:%Y-%m-%d} ({days} days)"
            )
        for warning in self._warnings():
            self.stdout.write(f"warning: {warning}")

    def _check(self, options) -> None:
        for warning in self._warnings():
            self.stdout.write(f"warning: {warning}")

    def _export(self, options) -> None:
        if not any(options[name] for name in ("chain", "key", "client_ca")):
            raise CommandError("nothing to export: give --chain/--key and/or --client-ca")
        if options["chain"] or options["key"]:
            if server_tls.chain_file():
                raise CommandError(
                    "the served chain is MDM_TLS_CERT_FILE's: the proxy reads it and "
                    "MDM_TLS_KEY_FILE; there is no chain of the portal's own to export"
                )
            chain = server_tls.served_chain()
            if not chain:
                raise CommandError(
                    "no server TLS certificate: MDM_PUBLIC_URL must be https, then run mdm_init"
                )
            if options["chain"]:
                server_tls.write_private_file(options["chain"], server_tls.pem(chain))
            if options["key"]:
                server_tls.write_private_file(options["key"], server_tls.generated_key_pem())
        if options["client_ca"]:
            authorities = CertificateAuthority.objects.defer("private_key_pem").order_by("pk")
            if not authorities:
                raise CommandError("no device-identity CA yet: run mdm_init")
            data = "".join(ca.certificate_pem for ca in authorities).encode()
            server_tls.write_private_file(options["client_ca"], data)
        for name in ("chain", "key", "client_ca"):
            if options[name]:
                self.stdout.write(f"wrote {Path(options[name])}")
