"""A stand-in for APNs: a real HTTP/2 server over mutual TLS on loopback, for tests and benchmarks.

hypercorn serves a small ASGI app. Like APNs, the server requires a client certificate: the
push certificates made by `StandInPKI.issue_push_certificate` (signed by the stand-in's test
CA) are accepted, anything else is refused during the TLS handshake. Every request is recorded
(method, path, headers, body, HTTP version, which connection carried it, the client
certificate's subject) and answered per device token as the test asks:

    with APNsStandIn(tmp_path) as apns:
        apns.answer(token, 410, "Unregistered")
        apns.fail_first(other_token, 2, status=429)  # then 200
        apns.latency = 0.01
        apns.drop_after = 50  # close each connection at its 51st request, the rest unanswered
        apns.goaway_after = 50  # or: hypercorn's GOAWAY once a connection got 50 requests
        ... settings.MDM_APNS_URL = apns.url; settings.MDM_APNS_CA_FILE = str(apns.ca_file)

It runs in a thread with its own event loop (`start()`/`stop()`, a context manager) or, for a
benchmark, in a child process (`serve_in_process`). Only `install_push_certificate` needs Django.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import json
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config

# Apple's marker for a production APNs certificate (see certs/pushcert.py).
OID_APNS_PRODUCTION = ObjectIdentifier("1.2.840.113635.100.6.3.2")
OID_APNS_DEVELOPMENT = ObjectIdentifier("1.2.840.113635.100.6.3.1")
NO_LIMIT = 10**9


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- the test PKI ------------------------------------------------------------------------------


class StandInPKI:
    """A test CA in a folder: it signs the server's certificate and the push certificates.

    Kept as files so that a stand-in in another process (the benchmark) shares it.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.ca_file = self.folder / "ca.pem"
        self.server_cert_file = self.folder / "server.pem"
        self.server_key_file = self.folder / "server-key.pem"
        self._ca_key_file = self.folder / "ca-key.pem"

    @classmethod
    def create(cls, folder: Path | str, name: str = "APNs stand-in test CA") -> StandInPKI:
        pki = cls(folder)
        pki.folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {uuid.uuid4()}")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(hours=1))
            .not_valid_after(_now() + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pki.ca_file.write_bytes(_pem(ca))
        pki._ca_key_file.write_bytes(_key_pem(ca_key))
        pki._ca_key_file.chmod(0o600)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = pki._sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            server_key.public_key(),
            extensions=[
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            ],
        )
        pki.server_cert_file.write_bytes(_pem(server))
        pki.server_key_file.write_bytes(_key_pem(server_key))
        pki.server_key_file.chmod(0o600)
        return pki

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        certificate = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = serialization.load_pem_private_key(self._ca_key_file.read_bytes(), password=None)
        return certificate, key

    def _sign(
        self,
        subject: x509.Name,
        public_key,
        *,
        extensions: list[x509.ExtensionType],
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        ca, ca_key = self._ca()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or _now() - dt.timedelta(hours=1))
            .not_valid_after(not_after or _now() + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def issue_push_certificate(
        self, *, topic: str | None = None, days: int = 365, development: bool = False
    ) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) shaped like Apple's MDM push certificates: subject
        `UID=com.apple.mgmt.External.<uuid>, CN=APSP:<uuid>, C=US`, client authentication,
        RSA 2048."""
        ident = str(uuid.uuid4())
        topic = topic or f"com.apple.mgmt.External.{ident}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, topic),
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    f"Apple Development IOS Push Services: {topic}"
                    if development
                    else f"APSP:{ident}",
                ),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )
        marker = OID_APNS_DEVELOPMENT if development else OID_APNS_PRODUCTION
        certificate = self._sign(
            subject,
            key.public_key(),
            extensions=[
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                x509.UnrecognizedExtension(marker, b"\x05\x00"),
            ],
            not_after=_now() + dt.timedelta(days=days),
        )
        return _pem(certificate), _key_pem(key)


def install_push_certificate(pki: StandInPKI, **kwargs):
    """Issue a push certificate from `pki` and import it as the portal's active one (Django)."""
    from certs.pushcert import import_push_certificate

    certificate_pem, key_pem = pki.issue_push_certificate(**kwargs)
    return import_push_certificate(
        certificate_pem,
        key_pem,
        orphaned_devices=lambda topic: 0,  # a test stand-in: nothing to orphan
        force=True,
        actor="apns-standin",
    ).certificate


# -- what the stand-in records -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    http_version: str
    connection: int  # which TLS connection carried it (1, 2 ...)
    client: tuple[str, int] | None  # the client's address and port
    client_subject: str  # the client certificate's subject (RFC 4514)
    received_at: float

    @property
    def token(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class _Connection:
    number: int
    subject: str
    writer: asyncio.StreamWriter
    accepted: int = 0  # requests that arrived
    answered: int = 0


@dataclass
class _Failures:
    remaining: int
    status: int
    reason: str


@dataclass
class _State:
    """What tests set (read by the server thread) and what the server saw."""

    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    failures: dict[str, _Failures] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    handshakes: int = 0


# -- the server --------------------------------------------------------------------------------


class APNsStandIn:
    """An HTTP/2 TLS server on 127.0.0.1 that answers like APNs. See the module docstring."""

    def __init__(
        self,
        folder: Path | str | None = None,
        *,
        pki: StandInPKI | None = None,
        trust_clients: bytes | None = None,
    ):
        """`pki`: the test CA (else a new one in `folder`). `trust_clients`: more PEM client
        certificates to accept (the portal's self-signed demo push certificate)."""
        if pki is None and folder is None:
            raise ValueError("give a folder for the test PKI, or a StandInPKI")
        if trust_clients and folder is None:
            raise ValueError("give a folder for the client trust file")
        self.pki = pki or StandInPKI.create(Path(folder) / "pki")
        self._client_ca_file = self.pki.ca_file
        if trust_clients:
            self._client_ca_file = Path(folder) / "client-trust.pem"
            self._client_ca_file.write_bytes(self.pki.ca_file.read_bytes() + trust_clients)
        self.latency = 0.0  # seconds before each answer
        self.drop_after: int | None = None  # close a connection after this many answers
        self.port = 0
        self._state = _State()
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._numbers = itertools.count(1)
        self._config = self._hypercorn_config()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _hypercorn_config(self) -> Config:
        config = Config()
        config.certfile = str(self.pki.server_cert_file)
        config.keyfile = str(self.pki.server_key_file)
        config.ca_certs = str(self._client_ca_file)
        config.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as APNs
        config.alpn_protocols = ["h2"]
        config.h2_max_concurrent_streams = 1000  # what APNs allows per connection
        config.keep_alive_max_requests = NO_LIMIT  # hypercorn's default GOAWAYs after 1000
        config.accesslog = None
        return config

    # -- what tests use ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA to trust for this server (MDM_APNS_CA_FILE)."""
        return self.pki.ca_file

    @property
    def goaway_after(self) -> int | None:
        """hypercorn's GOAWAY once a connection carried this many requests (its
        keep_alive_max_requests); requests in flight then get no answer (h2 sends nothing
        after a GOAWAY)."""
        limit = self._config.keep_alive_max_requests
        return None if limit == NO_LIMIT else limit

    @goaway_after.setter
    def goaway_after(self, value: int | None) -> None:
        self._config.keep_alive_max_requests = NO_LIMIT if value is None else value

    def answer(self, token: str, status: int, reason: str = "") -> None:
        """Answer every push to `token` with `status` (and `{"reason": reason}`)."""
        with self._lock:
            self._state.answers[token] = (status, reason)

    def fail_first(self, token: str, times: int, status: int = 429, reason: str = "") -> None:
        """The first `times` pushes to `token` get `status`, later ones the usual answer."""
        reason = reason or {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
            status, "InternalServerError"
        )
        with self._lock:
            self._state.failures[token] = _Failures(times, status, reason)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def connections(self) -> set[int]:
        """The connections that carried requests."""
        return {request.connection for request in self.requests}

    @property
    def handshakes(self) -> int:
        """TLS connections accepted (client certificate verified)."""
        with self._lock:
            return self._state.handshakes

    def reset(self) -> None:
        with self._lock:
            self._state = _State()
        self.latency = 0.0
        self.drop_after = None
        self.goaway_after = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> APNsStandIn:
        self._thread = threading.Thread(target=self._run, name="apns-standin", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("the APNs stand-in did not start") from self._error
        if not self.port:
            raise RuntimeError("the APNs stand-in did not start in time")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> APNsStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        context = WorkerContext(None)
        app = ASGIWrapper(self._app)
        tasks: set[asyncio.Task] = set()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
            tasks.add(asyncio.current_task())
            peer = writer.get_extra_info("peername")[:2]
            connection = _Connection(next(self._numbers), _client_subject(writer), writer)
            self._connections[peer] = connection
            with self._lock:
                self._state.handshakes += 1
            try:
                tcp_server = TCPServer(app, self._loop, self._config, context, {}, reader, writer)
                tcp_server.idle_task = _NoIdleTimeout()
                await tcp_server
            except (Exception, ExceptionGroup):  # noqa: S110  a connection dropped on purpose
                pass
            finally:
                self._connections.pop(peer, None)
                tasks.discard(asyncio.current_task())

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(
            on_connection,
            sock=sock,
            ssl=self._config.create_ssl_context(),
            backlog=1024,
            ssl_handshake_timeout=10,
        )
        self.port = sock.getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            await context.terminated.set()
            for connection in list(self._connections.values()):
                connection.writer.close()
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=5)
                for task in late:
                    task.cancel()
            await server.wait_closed()

    # -- the ASGI app --------------------------------------------------------------------------

    async def _app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        client = tuple(scope["client"]) if scope.get("client") else None
        connection = self._connections.get(client)
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=bytes(body),
            http_version=scope["http_version"],
            connection=connection.number if connection else 0,
            client=client,
            client_subject=connection.subject if connection else "",
            received_at=time.monotonic(),
        )
        with self._lock:
            self._state.requests.append(request)
        if connection is not None:
            # Counted on arrival: requests that arrive together must not all slip past the
            # limit before any of them is answered.
            connection.accepted += 1
        if (
            connection is not None
            and self.drop_after is not None
            and connection.accepted > self.drop_after
        ):
            # A broken connection: closed under the client's feet once it carried
            # `drop_after` answers; this push and those in flight stay unanswered.
            deadline = time.monotonic() + 5
            while connection.answered < self.drop_after and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            connection.writer.close()
            await _wait_for_disconnect(receive)
            return
        if self.latency:
            await asyncio.sleep(self.latency)
        status, reason = self._answer_for(request)
        await _respond(send, status, reason, request.headers.get("apns-id"))
        if connection is not None:
            connection.answered += 1

    def _answer_for(self, request: RecordedRequest) -> tuple[int, str]:
        if request.method != "POST" or not request.path.startswith("/3/device/"):
            return 404, "BadPath"
        token = request.token
        with self._lock:
            failures = self._state.failures.get(token)
            if failures is not None and failures.remaining > 0:
                failures.remaining -= 1
                return failures.status, failures.reason
            return self._state.answers.get(token, (200, ""))


class _NoIdleTimeout:
    """Connections stay open until the client or `stop()` closes them. (hypercorn's idle timer
    also warns about a never-awaited coroutine when a connection is dropped mid-stream.)"""

    async def restart(self, task_group, action) -> None:
        pass

    async def stop(self) -> None:
        pass


def _client_subject(writer: asyncio.StreamWriter) -> str:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        return ""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


async def _wait_for_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send, status: int, reason: str, apns_id: str | None) -> None:
    headers = [(b"apns-id", (apns_id or str(uuid.uuid4()).upper()).encode())]
    body = b""
    if status != 200:
        answer: dict = {"reason": reason}
        if status == 410:
            answer["timestamp"] = int(time.time() * 1000)
        body = json.dumps(answer).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- in a child process (benchmarks) -----------------------------------------------------------


def _serve_child(pki_folder: str, latency: float, ready, stop) -> None:
    standin = APNsStandIn(pki=StandInPKI(pki_folder))
    standin.latency = latency
    with standin:
        ready.send(standin.port)
        stop.wait()
        ready.send(len(standin.requests))


class StandInProcess:
    """The stand-in in its own process: `with StandInProcess(pki) as url: ...`."""

    def __init__(self, pki: StandInPKI, latency: float = 0.0):
        import multiprocessing

        self._mp = multiprocessing.get_context("spawn")
        self.pki = pki
        self.latency = latency
        self.requests = 0
        self._parent, self._child = self._mp.Pipe()
        self._stop = self._mp.Event()
        self._process = None
        self.url = ""

    def __enter__(self) -> StandInProcess:
        self._process = self._mp.Process(
            target=_serve_child,
            args=(str(self.pki.folder), self.latency, self._child, self._stop),
            daemon=True,
        )
        self._process.start()
        if not self._parent.poll(30):
            raise RuntimeError("the APNs stand-in process did not start")
        self.url = f"https://127.0.0.1:{self._parent.recv()}"
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._parent.poll(15):
            self.requests = self._parent.recv()
        self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
