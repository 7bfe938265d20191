"""A simulated device's lasting state, and the JSON file (--state) that keeps a fleet.

Everything a device must remember to be the same device after the simulator restarts: its
identity (UDID, hardware, key and certificate), what the MDM payload said (URLs, topic,
SignMessage), its push token and PushMagic, the trust it installed, the profiles it holds,
the commands it executed (CommandUUID -> Acknowledged or Error: a command delivered again
after that was executed twice; the soak, bench/soak.py, checks them against the portal), and
its declarative management (DeclarativeState: the declarations it holds, what became of their
assets, and what it last reported).
The file holds private keys: it is written with mode 0600, atomically (a new file renamed over
the old one), so a simulator killed while saving leaves the previous fleet intact.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

STATE_VERSION = 1
MAX_EXECUTED = 20_000  # CommandUUIDs a device remembers having executed

# A small mixed fleet: (ProductName, ModelName, Model, OSVersion, BuildVersion, capacity GB).
HARDWARE = [
    ("iPhone15,2", "iPhone", "MQ0T3LL/A", "17.5.1", "21F90", 128),
    ("iPhone14,5", "iPhone", "MLML3LL/A", "17.4", "21E219", 256),
    ("iPhone16,1", "iPhone", "MTL83LL/A", "18.1", "22B83", 128),
    ("iPad13,18", "iPad", "MPQ03LL/A", "17.5.1", "21F90", 64),
]


@dataclass
class DeclarativeState:
    """What a device keeps of declarative management (simulator/declarative.py syncs it)."""

    token: str = ""  # the DeclarationsToken of the manifest it last synced
    sync_due: bool = False  # a DeclarativeManagement command asked for a sync not yet done
    # Identifier -> the declaration as fetched: {"kind", "Type", "ServerToken", "Payload"}.
    declarations: dict[str, dict] = field(default_factory=dict)
    # Identifier -> what loading the asset's data gave (declarative_assets.AssetOutcome).
    assets: dict[str, dict] = field(default_factory=dict)
    # Status item (dotted name) -> its value as last reported; an incremental report sends
    # what differs (and management.declarations, always whole).
    reported: dict[str, object] = field(default_factory=dict)
    reports: int = 0  # status reports sent since enrollment (the first one is a FullReport)


@dataclass
class DeviceState:
    udid: str
    serial: str
    name: str
    product: str
    model_name: str
    model: str
    os_version: str
    build_version: str
    capacity_gb: int
    imei: str
    token: str  # hex, as APNs and the portal's push path write it
    push_magic: str
    unlock_token: str  # hex
    key_pem: str = ""
    certificate_pem: str = ""
    topic: str = ""
    server_url: str = ""
    checkin_url: str = ""
    sign_message: bool = True
    trust_pem: list[str] = field(default_factory=list)
    enrollment_profile: dict = field(default_factory=dict)  # its ProfileList entry
    profiles: list[dict] = field(default_factory=list)  # installed by InstallProfile
    enrolled: bool = False
    erased: bool = False
    # Enrolled from Setup Assistant (Automated Device Enrollment): supervised, and waiting
    # there until the portal sends DeviceConfigured.
    supervised: bool = False
    awaiting_configuration: bool = False
    executed: dict[str, str] = field(default_factory=dict)  # CommandUUID -> its final status
    declarative: DeclarativeState = field(default_factory=DeclarativeState)

    def remember_executed(self, command_uuid: str, status: str) -> None:
        """Note a command this device executed (answered Acknowledged or Error); the oldest
        are forgotten beyond MAX_EXECUTED."""
        self.executed[command_uuid] = status
        while len(self.executed) > MAX_EXECUTED:
            del self.executed[next(iter(self.executed))]

    def __post_init__(self) -> None:
        if isinstance(self.declarative, dict):  # as the state file keeps it
            names = {f.name for f in fields(DeclarativeState)}
            kept = {k: v for k, v in self.declarative.items() if k in names}
            self.declarative = DeclarativeState(**kept)
        self._key = None
        self._certificate = None

    @property
    def key(self):
        if self._key is None and self.key_pem:
            self._key = serialization.load_pem_private_key(self.key_pem.encode(), None)
        return self._key

    @property
    def certificate(self) -> x509.Certificate | None:
        if self._certificate is None and self.certificate_pem:
            self._certificate = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        return self._certificate

    def set_identity(self, key, certificate: x509.Certificate) -> None:
        self._key, self._certificate = key, certificate
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def platform(self) -> str:
        return "iPadOS" if self.model_name == "iPad" else "iOS"


def new_device(index: int) -> DeviceState:
    """A new device, not enrolled: its hardware, UDID, serial number and push token."""
    product, model_name, model, os_version, build, capacity = HARDWARE[index % len(HARDWARE)]
    return DeviceState(
        udid=str(uuid.uuid4()).upper(),
        serial="SIM" + secrets.token_hex(5).upper()[:9],
        name=f"Simulated {model_name} {index + 1:04d}",
        product=product,
        model_name=model_name,
        model=model,
        os_version=os_version,
        build_version=build,
        capacity_gb=capacity,
        imei="35" + "".join(str(secrets.randbelow(10)) for _ in range(13)),
        token=secrets.token_hex(32),
        push_magic=str(uuid.uuid4()).upper(),
        unlock_token=secrets.token_hex(32),
    )


def load_fleet(path: Path) -> list[DeviceState]:
    """The devices kept in `path` ([] when it does not exist); ValueError if unreadable."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r}, not {STATE_VERSION}")
        names = {f.name for f in fields(DeviceState)}
        return [
            DeviceState(**{k: v for k, v in item.items() if k in names}) for item in data["devices"]
        ]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the state file {path}: {exc}") from None


def save_fleet(path: Path, devices: list[DeviceState]) -> None:
    """Write the enrolled devices to `path` (0600, atomically); erased ones are forgotten."""
    kept = [asdict(d) for d in devices if d.enrolled and not d.erased]
    text = json.dumps({"version": STATE_VERSION, "devices": kept}, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)
