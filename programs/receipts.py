"""Receipt photos for sale claims, taken with the phone's camera on the dealer floor.

A photo arrives as JPEG, PNG or HEIC (iPhones) of at most 10 MB. What the bytes are is read
from the bytes, never from the Content-Type a client sends. It is decoded (Pillow, with
pillow-heif for HEIC), turned upright from its EXIF orientation, shrunk to fit 2,000 px, and
written again as a JPEG with no metadata at all: no GPS position of the dealer's shop, no
phone serial, nothing a decoder exploit could ride in on. Stored under
`RW_DATA_DIR/receipts/<program>/<claim>.jpg`, readable by the server's user only, replaced
atomically when the salesperson sends a better photo.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from kernel.errors import Invalid

MAX_BYTES = 10 * 1024 * 1024
MAX_SIDE = 2000
# Decoding more pixels than this is refused before memory is spent on it (a decompression bomb).
MAX_PIXELS = 60_000_000


def kind_of(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    # ISO base media (HEIF): "ftyp" then a HEIC/HEIF brand.
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return "heic"
    return None


def reencoded(content: bytes) -> bytes:
    """The photo as a clean JPEG; raises Invalid, naming the problem, for anything else."""
    if len(content) > MAX_BYTES:
        raise Invalid("a receipt photo is at most 10 MB", field="receipt")
    kind = kind_of(content[:16])
    if kind is None:
        raise Invalid("send the receipt as a JPEG, PNG or HEIC photo", field="receipt")
    from PIL import Image, ImageOps

    if kind == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise Invalid("the photo has too many pixels", field="receipt")
            image.load()
            upright = ImageOps.exif_transpose(image)
            upright = upright.convert("RGB")
            upright.thumbnail((MAX_SIDE, MAX_SIDE))
            out = io.BytesIO()
            # No exif, icc or comment arguments: the new file carries pixels only.
            upright.save(out, format="JPEG", quality=85, optimize=True)
            return out.getvalue()
    except Invalid:
        raise
    except Exception:  # Pillow raises many kinds for a broken or hostile file
        raise Invalid("the photo could not be read; take it again", field="receipt") from None


def path_of(data_path: Path, program_id: str, claim_id: str) -> Path:
    return data_path / "receipts" / program_id / f"{claim_id}.jpg"


def save(data_path: Path, program_id: str, claim_id: str, jpeg: bytes) -> None:
    target = path_of(data_path, program_id, claim_id)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{claim_id}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(jpeg)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)


def read(data_path: Path, program_id: str, claim_id: str) -> bytes | None:
    target = path_of(data_path, program_id, claim_id)
    return target.read_bytes() if target.exists() else None
