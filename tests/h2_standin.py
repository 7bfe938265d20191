"""A lean APNs stand-in for throughput measurement: simulator/h2server.py's `LeanServer`
behind mutual TLS, in a child process.

hypercorn (tests/apns_standin.py) serves only ~1,500 requests/s on a small machine, so a
benchmark against it measures hypercorn rather than our APNs client. The lean server requires
a client certificate signed by the `StandInPKI` (the same files, so the same push certificate
works).

In a child process, so that a benchmark's client does not share its CPU:

    with LeanStandInProcess(pki, answers={token: (410, "Unregistered")}) as standin:
        settings.MDM_APNS_URL = standin.url
        settings.MDM_APNS_CA_FILE = str(standin.ca_file)
        ...
        print(standin.requests)  # live count (a shared multiprocessing.Value)
    standin.requests, standin.connections, standin.recorded  # final figures after the block

`LeanServer` itself can also run on any event loop
(`await server.start(server_ssl_context(pki))`).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

from simulator.h2server import LeanRequest, LeanServer
from tests.apns_standin import StandInPKI

__all__ = ["LeanRequest", "LeanServer", "LeanStandInProcess", "server_ssl_context"]


def server_ssl_context(pki: StandInPKI) -> ssl.SSLContext:
    """Mutual TLS as APNs: a client certificate signed by the stand-in's CA is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    context.load_verify_locations(cafile=pki.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    return context


# -- in a child process (benchmarks) -----------------------------------------------------------


def _serve_child(pki_folder: str, options: dict, counter, pipe, stop) -> None:
    async def serve() -> None:
        server = LeanServer(counter=counter, **options)
        port = await server.start(server_ssl_context(StandInPKI(pki_folder)))
        pipe.send(port)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), daemon=True
        ).start()
        await stopping.wait()
        await server.close()
        pipe.send((server.requests, server.connections, server.recorded))

    asyncio.run(serve())


class LeanStandInProcess:
    """The lean stand-in in its own process, shaped like apns_standin's `StandInProcess`:

    `with LeanStandInProcess(pki) as standin:` gives `standin.url`, `standin.ca_file` and the
    live request count `standin.requests`; after the block, `requests`, `connections` and (with
    `record=True`) `recorded` hold the final figures."""

    def __init__(
        self,
        pki: StandInPKI,
        latency: float = 0.0,
        *,
        answers: dict[str, tuple[int, str]] | None = None,
        fail_first: dict[str, tuple[int, int, str]] | None = None,
        record: bool = False,
    ):
        import multiprocessing

        self._mp = multiprocessing.get_context("spawn")
        self.pki = pki
        self.latency = latency
        self._options = {
            "answers": answers,
            "fail_first": fail_first,
            "record": record,
            "latency": latency,
        }
        self._counter = self._mp.Value("q", 0, lock=False)
        self._parent, self._child = self._mp.Pipe()
        self._stop = self._mp.Event()
        self._process = None
        self._final: tuple[int, int, list[LeanRequest]] | None = None
        self.url = ""

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    @property
    def requests(self) -> int:
        """Requests received so far, each answered (with `latency`, after it); after the block:
        in total."""
        return self._final[0] if self._final else self._counter.value

    @property
    def connections(self) -> int | None:
        return self._final[1] if self._final else None

    @property
    def recorded(self) -> list[LeanRequest]:
        return self._final[2] if self._final else []

    def __enter__(self) -> LeanStandInProcess:
        self._process = self._mp.Process(
            target=_serve_child,
            args=(str(self.pki.folder), self._options, self._counter, self._child, self._stop),
            daemon=True,
        )
        self._process.start()
        if not self._parent.poll(30):
            self._process.terminate()
            raise RuntimeError("the lean APNs stand-in process did not start")
        self.url = f"https://127.0.0.1:{self._parent.recv()}"
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._parent.poll(15):
            self._final = self._parent.recv()
        self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
