"""One simulated device doing over HTTP(S) what an iPhone does with an MDM enrollment link,
or, in Setup Assistant mode, with Automated Device Enrollment.

Enrollment: download the enrollment profile (from Setup Assistant: POST the MachineInfo,
signed by the device identity the fleet's test device CA gives it, to <url>/dep/enroll, and
take the profile the portal answers with), take its trust, get the identity (SCEP with the
profile's Challenge, Subject and Keysize; ACME with its ClientIdentifier, a P-384 key and,
when the payload says Attest, an attestation of that key by the fleet's attestation CA, which
stands in for Apple's; or the PKCS#12 in it), then Authenticate and TokenUpdate to the
CheckInURL (from Setup Assistant the TokenUpdate says AwaitingConfiguration: the device waits
for DeviceConfigured, which it acknowledges once the portal sends it). Polling: PUT Idle to
the ServerURL, answer each command it
gets, until an empty 200. One request at a time, as a device sends them. A 401 is the portal
saying the device is not managed: the device drops its enrollment and enrolls again.

When the portal cannot be reached (a connection error, the proxy's 502 while the portal
restarts) or answers a 5xx, the device keeps the answer it was sending and sends it again at
its next try, sooner after a failure (1, 2, 4 ... seconds, up to its poll interval), as a real
device does: an answer is never lost on the device's side, so a command that comes again after
the portal took its answer was executed twice (counted as a duplicate).

A DeclarativeManagement command is acknowledged, and once the poll is over (the portal took
the acknowledgement) the device syncs its declarations (simulator/declarative.py).
"""

from __future__ import annotations

import asyncio
import base64
import plistlib
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from . import acme, declarative, scep
from . import profile as profiles
from .answers import answer
from .device_ca import MACHINE_INFO_CT, machine_info
from .identity import CHECKIN_CT, CONNECT_CT, sign_detached
from .report import Stats
from .state import DeclarativeState, DeviceState

MAX_COMMANDS_PER_POLL = 1000  # a server that never stops sending is a bug worth reporting
# nginx's own error page (server_tokens off) when it cannot reach the portal behind it: a 502,
# 503 or 504 with it is the proxy's, any other 5xx the portal's.
PROXY_PAGE = b"<center>nginx</center>"
PROXY_STATUSES = (502, 503, 504)
EXECUTED = ("Acknowledged", "Error")  # answers that mean the device ran the command
CURVES = {192: ec.SECP192R1, 256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}
NO_ATTESTATION_CA = (
    "acme: the profile asks for a device attestation: pass --attestation-ca DIR (made with "
    "--make-attestation-ca DIR) whose root.pem the portal trusts in MDM_ACME_ATTESTATION_ROOTS"
)


class ExchangeFailed(Exception):
    """A request of the device failed (already counted in the stats): its enrollment or poll
    stops there, as a real device gives up until its next try."""


@dataclass
class Fleet:
    """What every device of a run shares: where to enroll, how to connect, what to count."""

    url: str
    token: str | None
    stats: Stats
    ca_file: str | None = None
    client_cert: bool = False  # the identity as TLS client certificate (behind nginx)
    not_now_rate: float = 0.0
    timeout: float = 30.0
    concurrency: int = 8
    # Plays Apple's attestation service for ACME payloads with Attest (an AttestationCA, or
    # anything with its attestation_object method).
    attestation_ca: object | None = None
    # Setup Assistant: enroll by MachineInfo (POST /dep/enroll) signed by a device identity
    # from `device_ca` (a DeviceCA, or anything with its signed_machine_info method).
    setup_assistant: bool = False
    device_ca: object | None = None
    ddm_fail_rate: float = 0.0  # configurations that fail to apply (declarative_apply)

    def __post_init__(self) -> None:
        self._clients: dict[tuple, httpx.AsyncClient] = {}
        self._folder = tempfile.TemporaryDirectory(prefix="mdm-simulate-")

    def _context(self, trust: tuple[str, ...], identity: DeviceState | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if trust:
            # The profile's certificate payloads: what the device trusts once they installed.
            context.load_verify_locations(cadata="".join(trust))
        if identity is not None:
            # ssl takes a client certificate from files only: the run's private folder.
            path = Path(self._folder.name) / f"{identity.udid}.pem"
            path.write_text(identity.key_pem + identity.certificate_pem)
            path.chmod(0o600)
            context.load_cert_chain(path)
        return context

    def client(self, trust: list[str] = (), identity: DeviceState | None = None):
        """A client that trusts `trust` (plus --ca-file or the system's roots), presenting
        `identity` as client certificate when given; shared by the devices that can share it."""
        key = (tuple(trust), identity.udid if identity is not None else None)
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(
                max_connections=self.concurrency * 2 if identity is None else 2,
                max_keepalive_connections=self.concurrency * 2 if identity is None else 1,
            )
            client = httpx.AsyncClient(
                verify=self._context(tuple(trust), identity), timeout=self.timeout, limits=limits
            )
            self._clients[key] = client
        return client

    def forget(self, identity: DeviceState) -> None:
        """Drop the device's own client (its certificate changed)."""
        for key in [k for k in self._clients if k[1] == identity.udid]:
            client = self._clients.pop(key)
            asyncio.get_running_loop().create_task(client.aclose())

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._folder.cleanup()


class SimulatedDevice:
    def __init__(self, state: DeviceState, fleet: Fleet, key=None):
        self.state = state
        self.fleet = fleet
        self.stats = fleet.stats
        self.spare_key = key  # made before the run, for SCEP
        self.wake = asyncio.Event()
        self.pending_report: dict | None = None  # an answer the portal has not taken yet
        self.failures = 0  # polls in a row that could not reach the portal

    def retry_delay(self, poll_interval: float) -> float:
        """Seconds until the next poll: the interval, or sooner after failures."""
        if not self.failures:
            return poll_interval
        return min(poll_interval, 2.0 ** min(self.failures - 1, 6))

    # -- HTTP ----------------------------------------------------------------------------------

    async def _request(self, kind: str, client, method: str, url: str, **kw) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.stats.unreachable_portal(kind, f"connection error ({type(exc).__name__})")
            raise ExchangeFailed(f"{kind}: {exc}") from None
        self.stats.request(kind, time.monotonic() - started)
        status = response.status_code
        if status >= 500:
            if status in PROXY_STATUSES and PROXY_PAGE in response.content:
                self.stats.unreachable_portal(kind, f"HTTP {status} from the proxy")
            else:
                self.stats.server_error(kind, status)
            raise ExchangeFailed(f"{kind}: HTTP {status}")
        return response

    def _mdm_client(self):
        identity = self.state if self.fleet.client_cert else None
        return self.fleet.client(self.state.trust_pem, identity)

    async def _put(self, kind: str, url: str, message: dict, content_type: str):
        body = plistlib.dumps(message)
        headers = {"Content-Type": content_type, "User-Agent": "MDM/1.0"}
        if self.state.sign_message or not self.fleet.client_cert:
            headers["Mdm-Signature"] = sign_detached(body, self.state.certificate, self.state.key)
        return await self._request(
            kind, self._mdm_client(), "PUT", url, content=body, headers=headers
        )

    # -- enrollment ----------------------------------------------------------------------------

    async def _download_profile(self) -> bytes:
        """The enrollment profile from the enrollment link."""
        if not self.fleet.token:
            self._fail("profile: no enrollment token to enroll with")
        url = f"{self.fleet.url}/enroll/{self.fleet.token}/profile"
        response = await self._request("profile", self.fleet.client(), "GET", url)
        if response.status_code != 200:
            self._fail(f"profile: HTTP {response.status_code}")
        return response.content

    async def _setup_assistant_profile(self) -> bytes:
        """The enrollment profile Setup Assistant gets for the device's signed MachineInfo."""
        if self.fleet.device_ca is None:
            self._fail("dep: Setup Assistant needs a device CA to sign MachineInfo (--device-ca)")
        state = self.state
        info = machine_info(
            udid=state.udid,
            serial=state.serial,
            product=state.product,
            build_version=state.build_version,
            os_version=state.os_version,
            imei=state.imei if state.model_name == "iPhone" else "",
        )
        body = self.fleet.device_ca.signed_machine_info(info)
        headers = {"Content-Type": MACHINE_INFO_CT, "User-Agent": "MDM/1.0"}
        url = f"{self.fleet.url}/dep/enroll"
        response = await self._request(
            "dep", self.fleet.client(), "POST", url, content=body, headers=headers
        )
        if response.status_code != 200:
            reason = response.text.strip()[:200]
            self._fail(f"dep: MachineInfo HTTP {response.status_code} ({reason})")
        return response.content

    async def enroll(self) -> None:
        """Profile, identity, Authenticate, TokenUpdate; ExchangeFailed (counted) if not."""
        setup_assistant = self.fleet.setup_assistant
        if setup_assistant:
            content = await self._setup_assistant_profile()
        else:
            content = await self._download_profile()
        try:
            enrollment = profiles.read_enrollment_profile(content)
        except profiles.ProfileError as exc:
            self._fail(f"profile: unusable ({exc})")
        state = self.state
        state.trust_pem = [profiles.pem(c) for c in enrollment.trust]
        if enrollment.pkcs12 is not None:
            certificate, key = enrollment.pkcs12
        elif enrollment.acme is not None:
            certificate, key = await self._acme(enrollment.acme)
        else:
            certificate, key = await self._scep(enrollment.scep)
        state.set_identity(key, certificate)
        self.fleet.forget(state)
        state.topic = str(enrollment.mdm["Topic"])
        state.server_url = enrollment.server_url
        state.checkin_url = enrollment.checkin_url
        state.sign_message = bool(enrollment.mdm.get("SignMessage"))
        state.enrollment_profile = profiles.summary(
            enrollment.profile, enrollment.profile.get("PayloadContent") or [], encrypted=False
        )
        state.enrollment_profile["IsManaged"] = False  # installed by the user, not by the MDM
        state.profiles = []
        state.declarative = DeclarativeState()  # a new enrollment holds no declarations
        # Setup Assistant enrolls supervised (the DEP profile's is_supervised) and waits for
        # DeviceConfigured (await_device_configured).
        state.supervised = state.awaiting_configuration = setup_assistant
        await self._checkin("Authenticate", self._authenticate_keys())
        token_update = {
            "Topic": state.topic,
            "Token": bytes.fromhex(state.token),
            "PushMagic": state.push_magic,
            "UnlockToken": bytes.fromhex(state.unlock_token),
        }
        if setup_assistant:
            token_update["AwaitingConfiguration"] = True
        await self._checkin("TokenUpdate", token_update)
        state.enrolled = True

    def _fail(self, kind: str) -> None:
        self.stats.error(kind)
        raise ExchangeFailed(kind)

    def _authenticate_keys(self) -> dict:
        state = self.state
        return {
            "Topic": state.topic,
            "DeviceName": state.name,
            "Model": state.model,
            "ModelName": state.model_name,
            "ProductName": state.product,
            "OSVersion": state.os_version,
            "BuildVersion": state.build_version,
            "SerialNumber": state.serial,
            "IMEI": state.imei,
        }

    async def _checkin(self, message_type: str, keys: dict) -> None:
        message = {"MessageType": message_type, "UDID": self.state.udid, **keys}
        response = await self._put("checkin", self.state.checkin_url, message, CHECKIN_CT)
        if response.status_code != 200:
            self._fail(f"checkin: {message_type} HTTP {response.status_code}")

    async def _scep(self, payload: dict):
        """GetCACaps, GetCACert, then PKCSReq (POST when the CA says it takes it)."""
        url = payload.get("URL")
        if not url:
            self._fail("scep: the SCEP payload has no URL")
        client = self.fleet.client(self.state.trust_pem)
        caps = await self._request("scep", client, "GET", url, params={"operation": "GetCACaps"})
        if caps.status_code != 200:
            self._fail(f"scep: GetCACaps HTTP {caps.status_code}")
        params = {"operation": "GetCACert", "message": payload.get("Name", "")}
        answer_ = await self._request("scep", client, "GET", url, params=params)
        if answer_.status_code != 200:
            self._fail(f"scep: GetCACert HTTP {answer_.status_code}")
        try:
            ca_cert, recipient = scep.split_ca_certs(
                answer_.content, answer_.headers.get("content-type", "")
            )
        except (ValueError, StopIteration, TypeError) as exc:
            self._fail(f"scep: unreadable GetCACert ({type(exc).__name__})")
        key = self._key_for(int(payload.get("Keysize") or 2048))
        request, signer = scep.pkcs_req_for(payload, key, recipient)
        if "POSTPKIOperation" in caps.text.split():
            reply = await self._request(
                "scep",
                client,
                "POST",
                url,
                params={"operation": "PKIOperation"},
                content=request,
                headers={"Content-Type": "application/x-pki-message"},
            )
        else:
            message = base64.b64encode(request).decode()
            params = {"operation": "PKIOperation", "message": message}
            reply = await self._request("scep", client, "GET", url, params=params)
        if reply.status_code != 200:
            self._fail(f"scep: PKIOperation HTTP {reply.status_code}")
        try:
            return scep.issued_certificate(reply.content, signer, key, ca_cert), key
        except (scep.ScepFailure, scep.ScepClientError, ValueError) as exc:
            self._fail(f"scep: failure ({exc})")

    async def _acme(self, payload: profiles.AcmePayload):
        """The identity from the payload's ACME server: a new key of its KeyType and KeySize
        (a hardware-bound P-384 one for the portal's), attested when it says Attest."""
        attestation = None
        if payload.key_type == "RSA":
            key = self._key_for(payload.key_size)
        else:
            key = ec.generate_private_key(CURVES[payload.key_size]())
        if payload.attest:
            authority = self.fleet.attestation_ca
            if authority is None:
                self._fail(NO_ATTESTATION_CA)
            state = self.state

            def attestation(token: str) -> bytes:
                return authority.attestation_object(
                    key.public_key(), udid=state.udid, serial=state.serial, token=token
                )

        client = self.fleet.client(self.state.trust_pem)

        async def send(method: str, url: str, **kw) -> httpx.Response:
            return await self._request("acme", client, method, url, **kw)

        try:
            subject = scep.subject_from_payload(payload.subject)
            certificate = await acme.AcmeClient(send, payload.directory_url).enroll(
                payload.client_identifier,
                key,
                subject,
                attestation=attestation,
                alt_names=acme.alt_names(payload.subject_alt_name),
            )
        except (acme.AcmeError, ValueError, TypeError) as exc:
            self._fail(f"acme: {exc}")
        return certificate, key

    def _key_for(self, bits: int):
        key, self.spare_key = self.spare_key, None
        if key is not None and key.key_size == bits:
            return key
        return scep.make_key(bits)  # a Keysize other than the one made beforehand

    # -- polling -------------------------------------------------------------------------------

    async def poll(self) -> None:
        """Idle (or the answer the portal has not taken yet), then answer every command until
        an empty 200. Counts what went wrong; a device never stops over one exchange."""
        if self.state.erased or not self.state.enrolled:
            return
        try:
            await self._poll()
            state = self.state
            if state.declarative.sync_due and state.enrolled and not state.erased:
                await declarative.sync(self)
        except ExchangeFailed:
            self.failures += 1
            return
        except Exception as exc:  # noqa: BLE001 - counted: the device polls again all the same
            self.failures += 1
            self.stats.error(f"poll: the simulated device failed ({type(exc).__name__}: {exc})")
            return
        self.failures = 0

    async def _poll(self, reenrolled: bool = False) -> None:
        state = self.state
        report: dict = self.pending_report or {"UDID": state.udid, "Status": "Idle"}
        for _ in range(MAX_COMMANDS_PER_POLL):
            if report is self.pending_report:
                self.stats.resent_reports += 1
            try:
                response = await self._put("poll", state.server_url, report, CONNECT_CT)
            except ExchangeFailed:
                if "CommandUUID" in report:
                    self.pending_report = report  # sent again at the next try
                raise
            self.pending_report = None
            if response.status_code == 401 and not reenrolled:
                await self._reenroll()
                return await self._poll(reenrolled=True)
            if response.status_code != 200:
                self.stats.error(f"poll: HTTP {response.status_code}")
                return
            self.stats.last_exchange[state.udid] = time.time()
            if state.erased or not response.content:
                return
            try:
                delivered = plistlib.loads(response.content)
                command = delivered["Command"]
                request_type = str(command["RequestType"])
                command_uuid = str(delivered["CommandUUID"])
            except Exception:  # a body that is not a command: the device ignores it
                self.stats.error("poll: a 200 that is not a command")
                return
            executed_before = state.executed.get(command_uuid)
            if executed_before is not None:
                self.stats.duplicate(state.udid, command_uuid, request_type, executed_before)
            waiting = state.awaiting_configuration
            result = answer(state, command, self.fleet.not_now_rate)
            self.stats.commands[(request_type, result.status)] += 1
            if waiting and not state.awaiting_configuration:
                self.stats.released += 1
            if result.status in EXECUTED:
                state.remember_executed(command_uuid, result.status)
            if state.erased:
                self.stats.erased += 1
            report = {
                "UDID": state.udid,
                "CommandUUID": command_uuid,
                "Status": result.status,
                **result.result,
            }
        self.stats.error(f"poll: more than {MAX_COMMANDS_PER_POLL} commands in one session")

    async def _reenroll(self) -> None:
        """A 401: the portal no longer manages us; remove the enrollment and enroll anew."""
        self.stats.error("poll: HTTP 401 (re-enrolled)", problem=False)
        self.state.enrolled = False
        self.pending_report = None  # a device that is not managed has no one to answer
        try:
            await self.enroll()
        except ExchangeFailed:
            self.stats.enroll_failed += 1
            raise
        self.stats.reenrolled += 1
