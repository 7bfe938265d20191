"""A minimal HTTP/2 client for APNs: one TLS connection, many concurrent streams.

Built directly on the `h2` protocol library (the one httpx uses underneath) and asyncio
streams. httpx spends about 1.4 ms of CPU per request in its generic layers (httpcore, anyio),
which caps one worker at ~700 pushes a second on this hardware; APNs pushes are all alike
(small POSTs to one host), and this client does just that for about a tenth of the cost.

Errors that mean "this connection is gone" (TLS failure, reset, GOAWAY for our stream, EOF,
timeout) raise ConnectionLost, so the caller resends on a new connection.
"""

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hpack import Encoder, NeverIndexedHeaderTuple

READ_SIZE = 65536
# Our receive window: APNs answers are tiny, but thousands arrive at once.
RECEIVE_WINDOW = 2**24
# After a GOAWAY, streams the server said it took get this long to be answered; a server that
# then goes quiet must not hold the batch for the full request timeout.
GOAWAY_GRACE_SECONDS = 2.0


class ConnectionLost(Exception):
    """The connection failed before this request was answered; it may be sent again."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class _Stream:
    future: asyncio.Future
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


def _hpack_integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """RFC 7541 5.1: an integer with an N-bit prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class LiteralEncoder:
    """HPACK for APNs requests without the dynamic table (RFC 7541, 6.2.3: never indexed).

    Every push carries the same headers but its own path, so a stateful encoder spends most
    of a request's CPU on table bookkeeping that buys nothing. Without the dynamic table each
    header's encoding is fixed: computed once, then reused. The first block sets the table
    size to 0, which is always allowed, so the peer's table setting never matters.
    """

    PATH_INDEX = 4  # ":path" in the static table

    def __init__(self) -> None:
        self.header_table_size = 4096  # set by h2 from the peer's settings; unused here
        self._cache: dict[tuple[str, str], bytes] = {}
        self._reference = Encoder()  # never-indexed literals leave its state untouched
        self._first = True

    def encode(self, headers, huffman: bool = True) -> bytes:
        out = bytearray(b"\x20" if self._first else b"")  # dynamic table size update: 0
        self._first = False
        for name, value in headers:
            if name in (b":path", ":path"):  # h2 hands headers over as bytes
                raw = value if isinstance(value, bytes) else value.encode()
                out += _hpack_integer(self.PATH_INDEX, 4, 0x10)
                out += _hpack_integer(len(raw), 7) + raw
                continue
            key = (name, value)
            block = self._cache.get(key)
            if block is None:
                block = self._reference.encode([NeverIndexedHeaderTuple(name, value)])
                self._cache[key] = block
            out += block
        return bytes(out)


class _Connection(h2.connection.H2Connection):
    """h2's connection, counting open streams the cheap way.

    h2 walks every stream it knows each time a stream opens, to count the open ones (and
    forget the closed): with hundreds in flight that walk cost more than the request. The
    client knows how many of its streams are open; h2's own walk runs every PRUNE_EVERY
    requests only, to forget the closed streams.
    """

    PRUNE_EVERY = 1000
    client_streams: dict = {}

    @property
    def open_outbound_streams(self) -> int:
        return len(self.client_streams)

    def prune(self) -> None:
        h2.connection.H2Connection.open_outbound_streams.fget(self)


class H2Client:
    """Use as `async with H2Client(base_url, ssl_context) as client: await client.post(...)`."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.port = parts.port or 443
        self.authority = parts.netloc
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.streams: dict[int, _Stream] = {}
        self.closed: str = ""  # why the connection can take no new request
        self.flush_scheduled = False
        self.window_open = asyncio.Event()
        self.room = asyncio.Event()  # a stream slot freed up
        self.conn: h2.connection.H2Connection | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task | None = None

    async def __aenter__(self) -> "H2Client":
        self.ssl_context.set_alpn_protocols(["h2"])
        try:
            reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl_context, server_hostname=self.host
                ),
                self.timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise ConnectionLost(f"cannot connect to {self.authority}: {exc}") from exc
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self.writer.close()
            raise ConnectionLost(f"{self.authority} does not speak HTTP/2")
        # Our request headers are fixed and known to be valid: h2 need not check each one.
        config = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False
        )
        self.conn = _Connection(config=config)
        self.conn.client_streams = self.streams
        self.conn.encoder = LiteralEncoder()
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**20}
        )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(RECEIVE_WINDOW)
        self._flush()
        self.reader_task = asyncio.create_task(self._read(reader))
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._fail_all("connection closed")
        if self.reader_task is not None:
            self.reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader_task
        if self.writer is not None:
            with contextlib.suppress(Exception):
                if self.conn is not None:
                    self.conn.close_connection()
                    self._flush()
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        if self.closed:
            raise ConnectionLost(self.closed)
        await self._wait_for_a_stream_slot()
        stream_id = self.conn.get_next_available_stream_id()
        if stream_id % (2 * _Connection.PRUNE_EVERY) == 1:  # client streams are odd
            self.conn.prune()
        request_headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", self.authority),
            (":path", path),  # each one different: see LiteralEncoder
            *headers.items(),
            ("content-length", str(len(body))),
        ]
        stream = _Stream(future=asyncio.get_running_loop().create_future())
        try:
            self.conn.send_headers(stream_id, request_headers)
            self.streams[stream_id] = stream  # after: h2 counts it as open from here on
            await self._wait_for_window(stream_id, len(body))
            self.conn.send_data(stream_id, body, end_stream=True)
            self._flush_soon()
        except h2.exceptions.ProtocolError as exc:
            self.streams.pop(stream_id, None)
            raise ConnectionLost(f"HTTP/2 error: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout):  # no extra task, unlike wait_for
                return await stream.future
        except TimeoutError:
            raise ConnectionLost(f"no answer within {self.timeout:.0f} s") from None
        finally:
            self.streams.pop(stream_id, None)
            self.room.set()

    async def _wait_for_a_stream_slot(self) -> None:
        # The server's MAX_CONCURRENT_STREAMS (APNs: 1000): wait rather than overrun it.
        # Our own count: h2's open_outbound_streams walks every stream on each call.
        while len(self.streams) >= self.conn.remote_settings.max_concurrent_streams:
            self.room.clear()
            await self.room.wait()
            if self.closed:
                raise ConnectionLost(self.closed)

    async def _wait_for_window(self, stream_id: int, size: int) -> None:
        while self.conn.local_flow_control_window(stream_id) < size:
            self.window_open.clear()
            await self.window_open.wait()
            if self.closed:
                raise ConnectionLost(self.closed)

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and self.writer is not None:
            self.writer.write(data)

    def _flush_soon(self) -> None:
        """Write once per turn of the event loop: requests made together leave together."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    self._fail_all("the server closed the connection")
                    return
                for event in self.conn.receive_data(data):
                    self._handle(event)
                self._flush()
                await self.writer.drain()
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError) as exc:
            self._fail_all(f"{type(exc).__name__}: {exc}")

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.headers = dict(event.headers)
                stream.status = int(stream.headers.get(":status", "0"))
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.future.done():
                stream.future.set_result(Reply(stream.status, stream.headers, bytes(stream.body)))
        elif isinstance(event, h2.events.StreamReset):
            self._fail(event.stream_id, f"stream reset by the server (code {event.error_code})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: streams above last_stream_id were not processed and may be resent.
            self.closed = f"GOAWAY (code {event.error_code})"
            for stream_id in [s for s in self.streams if s > (event.last_stream_id or 0)]:
                self._fail(stream_id, self.closed)
            self.window_open.set()
            self.room.set()
            asyncio.get_running_loop().call_later(GOAWAY_GRACE_SECONDS, self._fail_all, self.closed)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.room.set()

    def _fail(self, stream_id: int, why: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(ConnectionLost(why))

    def _fail_all(self, why: str) -> None:
        self.closed = self.closed or why
        for stream_id in list(self.streams):
            self._fail(stream_id, why)
        self.window_open.set()
        self.room.set()
