"""A lean HTTP/2 server that answers like APNs: the `h2` library directly on asyncio.

The simulator's APNs listener (simulator/apns.py) and the tests' throughput stand-in
(tests/h2_standin.py) both run it. It does the least HTTP/2 work an APNs answer needs: TLS
with ALPN "h2" (the SSL context is the caller's: mutual TLS for the stand-in, none for the
simulator), and for every `POST /3/device/<token>` a `:status 200` with an `apns-id` header
and no body (or the status/reason configured for the token, or chosen by `decide`, with APNs'
JSON body). Per request it only counts, and with `record=True` keeps (path, headers, body).
No per-request logging.

It never stalls a client: our side's connection window is raised by 2**30 and every stream
starts with a 1 GiB window (INITIAL_WINDOW_SIZE), MAX_CONCURRENT_STREAMS is 1000 (as APNs),
received data is acknowledged, and events are processed in batches (one 64 KiB read, then one
write of everything h2 has to send).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

# decide(token, body) -> (status, reason): the answer to one push, chosen by the caller.
Decide = Callable[[bytes, bytes], tuple[int, str]]

READ_SIZE = 64 * 1024
WINDOW = 2**30  # our receive window: per stream (INITIAL_WINDOW_SIZE) and the connection's
MAX_CONCURRENT_STREAMS = 1000  # what APNs allows per connection
DEVICE_PREFIX = b"/3/device/"
_H2_CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,  # bytes in, bytes out: no decoding per header
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


@dataclass(frozen=True)
class LeanRequest:
    """What `record=True` keeps of a request."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def token(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class _LiteralEncoder:
    """HPACK for our answers without h2's encoder work: no dynamic table, no Huffman.

    h2's `Encoder` Huffman-codes and indexes every header, and each answer's apns-id is new,
    so it costs about as much as the rest of the answer. Here `:status 200` is the static
    table's entry 8 and every other header a "literal without indexing, new name"
    (RFC 7541 6.2.2). The first block sets the peer's dynamic table to size 0, which stays
    within any SETTINGS_HEADER_TABLE_SIZE it announces later.
    """

    def __init__(self):
        self._prefix = b"\x20"  # dynamic table size update: 0 (RFC 7541 6.3)
        self.header_table_size = 0  # h2 sets the peer's limit here; we never use the table

    def encode(self, headers, huffman: bool = True) -> bytes:
        out = bytearray(self._prefix)
        self._prefix = b""
        for name, value in headers:
            if name == b":status" and value == b"200":
                out += b"\x88"
                continue
            out += b"\x00"
            out += _integer(len(name)) + name
            out += _integer(len(value)) + value
        return bytes(out)


class _ServerConnection(H2Connection):
    """h2 counts a connection's open streams by scanning all of them for every new stream
    (O(streams in flight) per request, which shows at 500 streams in flight). Here the count
    is the size of `streams`, whose closed streams `purge()` drops before each batch: exact at
    a batch's start, and on the safe side within it (streams reset in the batch still count).
    """

    @property
    def open_inbound_streams(self) -> int:
        return len(self.streams)

    def purge(self) -> None:
        self._open_streams(1)  # h2's own scan: drops closed streams (client streams are odd)


def _integer(value: int) -> bytes:
    """An HPACK string length (7-bit prefix, no Huffman flag)."""
    if value < 127:
        return bytes((value,))
    out = bytearray((127,))
    value -= 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


class LeanServer:
    """The HTTP/2 server: one asyncio task per connection, counters, optional recording."""

    def __init__(
        self,
        *,
        answers: dict[str, tuple[int, str]] | None = None,
        fail_first: dict[str, tuple[int, int, str]] | None = None,
        record: bool = False,
        latency: float = 0.0,
        counter=None,
        decide: Decide | None = None,
    ):
        """`answers`: token -> (status, reason) for every push to it; `fail_first`: token ->
        (times, status, reason) for its first pushes; `latency`: seconds before each answer;
        `counter`: a shared multiprocessing.Value updated after every batch; `decide`: called
        with (token, body) of every push to choose its answer (after `answers`/`fail_first`)."""
        self._answers = {
            token.encode(): (status, reason) for token, (status, reason) in (answers or {}).items()
        }
        self._failures = {
            token.encode(): [times, status, reason]
            for token, (times, status, reason) in (fail_first or {}).items()
        }
        self._decide = decide
        self._inspect = bool(self._answers or self._failures or decide)
        self.record = record
        self._bodies = record or decide is not None  # keep each request's body
        self.latency = latency
        self.requests = 0
        self.connections = 0
        self.recorded: list[LeanRequest] = []
        self._counter = counter
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: any free port) with `context` (ALPN "h2"); the port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self._server = await asyncio.start_server(
            self._connection,
            sock=sock,
            ssl=context,
            backlog=1024,
            ssl_handshake_timeout=10,
            limit=4 * READ_SIZE,
        )
        self.port = sock.getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    # -- one connection ------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        self._writers.add(writer)
        conn = _ServerConnection(config=_H2_CONFIG)
        conn.encoder = _LiteralEncoder()
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(WINDOW)
        writer.write(conn.data_to_send())
        streams: dict[int, list] = {}  # stream id -> [headers, body], only when needed
        keep = self.record or self._inspect
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                conn.purge()  # streams answered since the last batch: h2 counts the rest
                try:
                    events = conn.receive_data(data)
                except ProtocolError:
                    writer.write(conn.data_to_send())
                    break
                answered = 0
                for event in events:
                    kind = type(event)
                    if kind is DataReceived:
                        if event.flow_controlled_length:
                            conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        if self._bodies:
                            stream = streams.get(event.stream_id)
                            if stream is not None:
                                stream[1] += event.data
                    elif kind is RequestReceived:
                        if keep:
                            streams[event.stream_id] = [event.headers, bytearray()]
                    elif kind is StreamEnded:
                        answered += 1
                        stream = streams.pop(event.stream_id, None) if keep else None
                        if self.latency:
                            asyncio.get_running_loop().call_later(
                                self.latency,
                                self._answer_late,
                                conn,
                                writer,
                                event.stream_id,
                                stream,
                            )
                        else:
                            self._answer(conn, event.stream_id, stream)
                    elif kind is StreamReset:
                        streams.pop(event.stream_id, None)
                    elif kind is ConnectionTerminated:
                        writer.write(conn.data_to_send())
                        return
                if answered:
                    self.requests += answered
                    if self._counter is not None:
                        self._counter.value = self.requests
                out = conn.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, conn: H2Connection, stream_id: int, stream: list | None) -> None:
        if stream is None:  # the common case: nothing to look at, 200
            conn.send_headers(
                stream_id,
                [(b":status", b"200"), (b"apns-id", str(uuid.uuid4()).upper().encode())],
                end_stream=True,
            )
            return
        headers, body = stream
        method = path = apns_id = b""
        for name, value in headers:
            if name == b":path":
                path = value
            elif name == b":method":
                method = value
            elif name == b"apns-id":
                apns_id = value
        if self.record:
            self.recorded.append(
                LeanRequest(
                    path.decode("latin-1"),
                    {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
                    bytes(body),
                )
            )
        status, reason = self._status_for(method, path, body)
        response = [(b":status", str(status).encode())]
        response.append((b"apns-id", apns_id or str(uuid.uuid4()).upper().encode()))
        if status == 200:
            conn.send_headers(stream_id, response, end_stream=True)
            return
        answer: dict = {"reason": reason}
        if status == 410:
            answer["timestamp"] = int(time.time() * 1000)
        payload = json.dumps(answer).encode()
        response.append((b"content-type", b"application/json"))
        response.append((b"content-length", str(len(payload)).encode()))
        conn.send_headers(stream_id, response)
        conn.send_data(stream_id, payload, end_stream=True)

    def _status_for(self, method: bytes, path: bytes, body: bytes) -> tuple[int, str]:
        if method != b"POST" or not path.startswith(DEVICE_PREFIX):
            return 404, "BadPath"
        token = path[len(DEVICE_PREFIX) :]
        failures = self._failures.get(token)
        if failures is not None and failures[0] > 0:
            failures[0] -= 1
            return failures[1], failures[2]
        if token in self._answers or self._decide is None:
            return self._answers.get(token, (200, ""))
        return self._decide(token, bytes(body))

    def _answer_late(self, conn, writer, stream_id: int, stream: list | None) -> None:
        if writer.is_closing():
            return
        try:
            self._answer(conn, stream_id, stream)
        except ProtocolError:  # the stream was reset meanwhile
            return
        writer.write(conn.data_to_send())
