"""The soak's load: commands enqueued continuously through the REST API, as a script would.

`Enqueuer(api_url, key, udids, ...)` runs in a thread of the driver (bench/soak.py): `rate`
requests a second (Poisson arrivals), each one command for a random handful of devices, and
every `fleet_every` seconds one for the whole fleet, a mix of the commands an admin sends
(DeviceInformation, SecurityInfo, ProfileList, CertificateList, InstalledApplicationList,
InstallProfile / RemoveProfile, DeviceLock). It never retries a POST (the portal may have
queued it before the connection broke: the check reads what was queued from the database),
and counts its answers the way the simulator does: 201, refusals (4xx), 5xx from the portal,
and the portal unreachable (connection errors, the proxy's 502/503/504 page), with when.
"""

from __future__ import annotations

import base64
import plistlib
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from simulator.device import PROXY_PAGE, PROXY_STATUSES

PROFILES = 4  # InstallProfile / RemoveProfile pick among these identifiers
QUERIES = ["DeviceName", "BatteryLevel", "OSVersion", "SerialNumber", "WiFiMAC", "ModelName"]
# (RequestType, weight) of the targeted commands.
MIX = [
    ("DeviceInformation", 25),
    ("SecurityInfo", 15),
    ("ProfileList", 15),
    ("CertificateList", 10),
    ("InstalledApplicationList", 5),
    ("InstallProfile", 12),
    ("RemoveProfile", 10),
    ("DeviceLock", 8),
]
# What goes to the whole fleet, in turn.
FLEET_COMMANDS = ["DeviceInformation", "ProfileList", "SecurityInfo", "InstallProfile"]
MOST_TARGETS = 25  # devices of a targeted command: 1 to this many


def profile_identifier(number: int) -> str:
    return f"org.example.soak.profile{number}"


def profile_payload(number: int) -> dict:
    """A small configuration profile (a Wi-Fi payload), as InstallProfile's base64 Payload."""
    identifier = profile_identifier(number)
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, identifier)).upper(),
        "PayloadDisplayName": f"Soak profile {number}",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.wifi.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": identifier + ".wifi",
                "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, identifier)).upper(),
                "SSID_STR": f"Soak {number}",
            }
        ],
    }
    return {"Payload": base64.b64encode(plistlib.dumps(profile)).decode()}


def command_body(request_type: str, rng: random.Random) -> dict:
    """The API's `request_type` and `payload` for one command of the mix."""
    payload: dict = {}
    if request_type == "DeviceInformation":
        payload = {"Queries": rng.sample(QUERIES, rng.randint(1, len(QUERIES)))}
    elif request_type == "InstallProfile":
        payload = profile_payload(rng.randrange(PROFILES))
    elif request_type == "RemoveProfile":
        payload = {"Identifier": profile_identifier(rng.randrange(PROFILES))}
    elif request_type == "DeviceLock":
        payload = {"Message": "Soak test: please ignore"}
    return {"request_type": request_type, "payload": payload}


@dataclass
class EnqueueStats:
    requests: int = 0
    queued: int = 0  # 201
    rows: int = 0  # devices the 201s queued for
    fleet_commands: int = 0
    by_type: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)  # "HTTP 409: ..." (first words)
    portal_5xx: Counter = field(default_factory=Counter)
    unreachable: Counter = field(default_factory=Counter)
    unreachable_seconds: Counter = field(default_factory=Counter)
    command_uuids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        ordered = sorted(self.latencies)

        def pick(fraction: float) -> float:
            if not ordered:
                return 0.0
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

        return {
            "requests": self.requests,
            "queued": self.queued,
            "rows": self.rows,
            "fleet_commands": self.fleet_commands,
            "by_type": dict(sorted(self.by_type.items())),
            "refused": dict(sorted(self.refused.items())),
            "portal_5xx": dict(sorted(self.portal_5xx.items())),
            "unreachable": dict(sorted(self.unreachable.items())),
            "unreachable_seconds": {str(k): v for k, v in sorted(self.unreachable_seconds.items())},
            "latency_ms": {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)},
        }


class Enqueuer(threading.Thread):
    def __init__(
        self,
        api_url: str,
        key: str,
        udids: list[str],
        *,
        rate: float,
        fleet_every: float,
        ca_file: str,
        seed: int | None = None,
    ):
        super().__init__(name="soak-enqueuer", daemon=True)
        self.url = api_url.rstrip("/") + "/api/v1/commands/"
        self.udids = udids
        self.rate = rate
        self.fleet_every = fleet_every
        self.rng = random.Random(seed)
        self.stats = EnqueueStats()
        self.halt = threading.Event()
        self.client = httpx.Client(
            headers={"Authorization": f"Token {key}"}, verify=ca_file, timeout=60
        )
        self._types = [name for name, _ in MIX]
        self._weights = [weight for _, weight in MIX]

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.client.close()

    def run(self) -> None:
        next_fleet = time.monotonic() + self.fleet_every / 2
        fleet_turn = 0
        while not self.halt.is_set():
            if self.fleet_every and time.monotonic() >= next_fleet:
                request_type = FLEET_COMMANDS[fleet_turn % len(FLEET_COMMANDS)]
                fleet_turn += 1
                next_fleet += self.fleet_every
                self.post(request_type, self.udids, fleet=True)
            else:
                request_type = self.rng.choices(self._types, self._weights)[0]
                count = self.rng.randint(1, min(MOST_TARGETS, len(self.udids)))
                self.post(request_type, self.rng.sample(self.udids, count))
            if self.rate:
                self.halt.wait(self.rng.expovariate(self.rate))

    def post(self, request_type: str, udids: list[str], *, fleet: bool = False) -> None:
        body = {**command_body(request_type, self.rng), "devices": udids}
        stats = self.stats
        stats.requests += 1
        started = time.monotonic()
        try:
            answer = self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            self._unreachable(f"connection error ({type(exc).__name__})")
            return
        stats.latencies.append(time.monotonic() - started)
        status = answer.status_code
        if status == 201:
            data = answer.json()
            stats.queued += 1
            stats.rows += data["devices"]
            stats.by_type[request_type] += 1
            stats.fleet_commands += fleet
            stats.command_uuids.append(data["command_uuid"])
        elif status in PROXY_STATUSES and PROXY_PAGE in answer.content:
            self._unreachable(f"HTTP {status} from the proxy")
        elif status >= 500:
            stats.portal_5xx[f"HTTP {status}"] += 1
        else:
            words = " ".join(answer.text.split()[:8])
            stats.refused[f"HTTP {status}: {words}"[:120]] += 1

    def _unreachable(self, what: str) -> None:
        self.stats.unreachable[what] += 1
        self.stats.unreachable_seconds[int(time.time())] += 1
