"""The simulator's command line, shared by `manage.py mdm_simulate` and `python -m simulator`.

`add_arguments(parser)` declares every option with its help; `options_from(values)` turns
the parsed values (a dict) into `runner.Options`. `--make-attestation-ca DIR` is a run of its
own: `make_attestation_ca(DIR)` writes the test attestation CA an ACME fleet's
`--attestation-ca` takes, and says what the portal must trust; `--make-device-ca DIR`
(`make_device_ca`) likewise writes the test device CA a Setup Assistant fleet
(`--setup-assistant --device-ca DIR`) signs its MachineInfo with.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .attestation import FILES, AttestationCA
from .device_ca import FILES as DEVICE_CA_FILES
from .device_ca import DeviceCA
from .runner import Options, SimulatorError

DESCRIPTION = (
    "Simulate a fleet of Apple devices against an MDM portal, over real HTTP(S): each device "
    "has its own key, downloads the enrollment profile (or, with --setup-assistant, gets it "
    "for its signed MachineInfo as from Setup Assistant), gets its identity by SCEP or ACME "
    "(with a device attestation from --attestation-ca), sends "
    "Authenticate and TokenUpdate, then polls the server URL and answers every command as a "
    "device does (a DeclarativeManagement command makes it sync its declarations: fetch them, "
    "download their assets, obtain credential certificates, and report their status). Prints "
    "a summary (enrollments, requests, commands by type and status, declarative syncs, "
    "errors, requests per second, latency) and exits non-zero when a device failed to enroll "
    "or a request got an unexpected answer."
)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser, *, enrollment_help: str = "") -> None:
    parser.add_argument(
        "--url",
        help="the portal's base URL, e.g. https://mdm.example.org (profile download at "
        "URL/enroll/TOKEN/profile, or URL/dep/enroll from Setup Assistant; the profile then "
        "gives the SCEP or ACME, check-in and server URLs); required but with "
        "--make-attestation-ca and --make-device-ca",
    )
    parser.add_argument(
        "--devices",
        type=_positive,
        help="how many devices (default 10, or one per serial number of --serials)",
    )
    parser.add_argument(
        "--enrollment",
        metavar="TOKEN",
        help=enrollment_help or "the enrollment token (the end of the enrollment link)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=8,
        help="devices in flight at once (default 8); each sends one request at a time",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="after enrolling, keep polling for S seconds; 0: until SIGINT/SIGTERM; "
        "not given: enroll, drain each device's queue once, and exit",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="with --duration: seconds between a device's polls (default 5, +-20%%), "
        "sooner when a push wakes it",
    )
    parser.add_argument(
        "--not-now-rate",
        type=_fraction,
        default=0.0,
        metavar="R",
        help="answer NotNow to this fraction (0-1) of the commands a device may postpone "
        "(never to the ones Apple says are never answered NotNow)",
    )
    parser.add_argument(
        "--ddm-fail-rate",
        type=_fraction,
        default=0.0,
        metavar="R",
        help="declarative management: fail this fraction (0-1) of the configurations a device "
        "activates (Error.ConfigurationCannotBeApplied in its status report; the same ones at "
        "every sync). Apple's test configuration com.apple.configuration.management.test "
        "fails when its ReturnStatus is Failed, whatever this says",
    )
    parser.add_argument(
        "--client-cert",
        action="store_true",
        help="present the identity as TLS client certificate on check-in and server "
        "requests (the production stack, scripts/serve.sh) instead of only an Mdm-Signature",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA certificates to trust for the portal's TLS when it is private (the profile "
        "download; afterwards the profile's certificate payloads are trusted too)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="keep the enrolled devices in this JSON file (mode 0600; holds their keys): "
        "a later run continues as the same devices without enrolling again",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON here")
    parser.add_argument(
        "--apns-listen",
        metavar="HOST:PORT",
        help="serve a local APNs stand-in (TLS + HTTP/2) here: a push to one of the devices' "
        "tokens makes it poll at once; point the portal at it with MDM_APNS_URL=https://HOST:PORT",
    )
    parser.add_argument(
        "--apns-tls-dir",
        metavar="DIR",
        help="the stand-in's DIR/apns-cert.pem and DIR/apns-key.pem (a self-signed pair for "
        "127.0.0.1 and localhost is made when missing; the portal trusts it with "
        "MDM_APNS_CA_FILE=DIR/apns-cert.pem)",
    )
    parser.add_argument(
        "--key-size",
        type=int,
        default=2048,
        metavar="BITS",
        help="RSA key size made beforehand for SCEP (default 2048; a profile asking for "
        "another Keysize gets it)",
    )
    parser.add_argument(
        "--attestation-ca",
        metavar="DIR",
        help="the test attestation CA (made by --make-attestation-ca) that plays Apple for ACME "
        "profiles asking for a device attestation (Attest): the portal must trust DIR/root.pem "
        "in MDM_ACME_ATTESTATION_ROOTS. With it no RSA keys are made beforehand (ACME's EC "
        "keys are made as each device enrolls)",
    )
    parser.add_argument(
        "--make-attestation-ca",
        metavar="DIR",
        help="write a new test attestation CA to DIR (kept if DIR already has one), print the "
        "root.pem to put in the portal's MDM_ACME_ATTESTATION_ROOTS, and exit",
    )
    parser.add_argument(
        "--setup-assistant",
        action="store_true",
        help="enroll as Automated Device Enrollment devices do from Setup Assistant: POST "
        "the MachineInfo, signed by a device identity from --device-ca, to URL/dep/enroll "
        "(no enrollment token), then say AwaitingConfiguration in TokenUpdate and wait for "
        "DeviceConfigured",
    )
    parser.add_argument(
        "--device-ca",
        metavar="DIR",
        help="the test device CA (made by --make-device-ca) that plays Apple's iPhone Device CA "
        "for --setup-assistant: the portal must trust DIR/root.pem in MDM_DEP_DEVICE_ROOTS",
    )
    parser.add_argument(
        "--serials",
        type=_serials,
        metavar="S1,S2,...",
        help="the devices' serial numbers, in order (with --setup-assistant: those the "
        "portal's DEP servers list, with a DEP profile assigned)",
    )
    parser.add_argument(
        "--make-device-ca",
        metavar="DIR",
        help="write a new test device CA to DIR (kept if DIR already has one), print the "
        "root.pem to put in the portal's MDM_DEP_DEVICE_ROOTS, and exit",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="per request (default 30)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _serials(text: str) -> list[str]:
    serials = [serial.strip() for serial in text.split(",") if serial.strip()]
    if not serials:
        raise argparse.ArgumentTypeError("give serial numbers separated by commas")
    return serials


def options_from(values: dict) -> Options:
    serials = values.get("serials")
    devices = values.get("devices") or (len(serials) if serials else 10)
    return Options(
        url=values["url"],
        devices=devices,
        enrollment=values.get("enrollment"),
        concurrency=values["concurrency"],
        duration=values.get("duration"),
        poll_interval=values["poll_interval"],
        not_now_rate=values["not_now_rate"],
        ddm_fail_rate=values.get("ddm_fail_rate") or 0.0,
        client_cert=values["client_cert"],
        ca_file=values.get("ca_file"),
        state=values.get("state"),
        json=values.get("json"),
        apns_listen=values.get("apns_listen"),
        apns_tls_dir=values.get("apns_tls_dir"),
        key_size=values["key_size"],
        timeout=values["timeout"],
        progress=not values["no_progress"],
        attestation_ca=values.get("attestation_ca"),
        setup_assistant=bool(values.get("setup_assistant")),
        device_ca=values.get("device_ca"),
        serials=serials,
    )


def make_attestation_ca(folder: str) -> str:
    """Write a test attestation CA to `folder` unless it holds one; what to do next."""
    return _make_test_ca(
        folder, AttestationCA, FILES, option="--make-attestation-ca", what="attestation CA",
        setting="MDM_ACME_ATTESTATION_ROOTS",
        use=f"devices attest with it given --attestation-ca {folder}",
    )  # fmt: skip


def make_device_ca(folder: str) -> str:
    """Write a test device CA to `folder` unless it holds one; what to do next."""
    return _make_test_ca(
        folder, DeviceCA, DEVICE_CA_FILES, option="--make-device-ca", what="device CA",
        setting="MDM_DEP_DEVICE_ROOTS",
        use=f"devices sign their MachineInfo with it given --setup-assistant --device-ca {folder}",
    )  # fmt: skip


def _make_test_ca(
    folder: str, kind, files, *, option: str, what: str, setting: str, use: str
) -> str:
    path = Path(folder)
    try:
        if all((path / name).is_file() for name in files):
            kind.load(path)  # readable: kept, its root may be trusted already
            made = f"kept the {what} already in"
        else:
            kind.create().save(path)
            made = f"made a test {what} in"
    except (OSError, ValueError, TypeError) as exc:
        raise SimulatorError(f"{option} {folder}: {exc}") from None
    root = (path / "root.pem").resolve()
    return f"{made} {path}\nthe portal trusts it with {setting}={root}\n{use}"
