"""A test CA's certificates and keys as PEM files in a folder (the simulator's --attestation-ca
and --device-ca): written with keys readable by their owner only, read back all or nothing."""

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def save_pem(folder: str | Path, items: dict[str, object]) -> None:
    """Writes each certificate or private key of `items` (file name -> object) to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    for name, value in items.items():
        path = folder / name
        if isinstance(value, x509.Certificate):
            path.write_bytes(value.public_bytes(pem))
            continue
        path.write_bytes(
            value.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)


def load_pem(folder: str | Path, names: tuple[str, ...]) -> dict[str, object]:
    """The files `names` of `folder` (a `-key.pem` is a private key, the rest certificates);
    FileNotFoundError naming those missing."""
    folder = Path(folder)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}")
    loaded = {}
    for name in names:
        data = (folder / name).read_bytes()
        if name.endswith("-key.pem"):
            loaded[name] = serialization.load_pem_private_key(data, None)
        else:
            loaded[name] = x509.load_pem_x509_certificate(data)
    return loaded
