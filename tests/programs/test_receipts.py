"""A receipt photo from the phone: any of JPEG, PNG or HEIC, cleaned of everything but its
pixels, shown to the program's managers; and a rejected claim fixed and sent again."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.factories import bearer, new_participant, new_program, random_ref, tokens_for

pytestmark = pytest.mark.sql

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def photo(fmt: str, size: tuple[int, int] = (300, 100), orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, (230, 230, 220))
    image.paste((20, 20, 20), (0, 0, size[0] // 3, size[1]))  # a dark stripe on the left
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[GPS_IFD] = {1: "N", 2: (41.0, 52.0, 0.0)}  # where the shop is
    image.save(out, format=fmt, exif=exif.tobytes())
    return out.getvalue()


async def claimant(client: Any) -> tuple[Any, dict[str, str], dict[str, Any]]:
    program = await new_program(client)
    person = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    claim = await client.post("/v1/me/claims", headers={**me, "Idempotency-Key": random_ref()}, json={
        "invoice_number": random_ref("INV"), "invoice_date": "2026-11-20",
        "amount": {"amount": 45_000, "currency": "USD"}, "product": "ThermoPro 200"})
    assert claim.status_code == 201, claim.text
    return program, me, claim.json()


async def send(client: Any, me: dict[str, str], claim_id: str, body: bytes, kind: str = "image/jpeg") -> Any:
    return await client.put(f"/v1/me/claims/{claim_id}/receipt", content=body,
                            headers={**me, "Content-Type": kind})


async def test_a_jpeg_from_the_camera_is_stored_upright_without_its_location(client) -> None:  # type: ignore[no-untyped-def]
    program, me, claim = await claimant(client)
    # Orientation 6: the camera held sideways; the stored photo is turned upright.
    sent = await send(client, me, claim["id"], photo("JPEG", orientation=6))
    assert sent.status_code == 200, sent.text
    assert sent.json()["receipt_at"] is not None
    seen = await client.get(f"/v1/claims/{claim['id']}/receipt", headers=program.headers)
    assert seen.status_code == 200 and seen.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(seen.content))
    assert stored.size == (100, 300)
    assert dict(stored.getexif()) == {} and "exif" not in stored.info and b"PhoneMaker" not in seen.content
    mine = await client.get(f"/v1/me/claims/{claim['id']}/receipt", headers=me)
    assert mine.status_code == 200 and mine.content == seen.content
    # Another participant, another program: not theirs.
    _, stranger, _ = await claimant(client)
    assert (await client.get(f"/v1/me/claims/{claim['id']}/receipt", headers=stranger)).status_code == 404
    other_program, _, _ = await claimant(client)
    assert (await client.get(f"/v1/claims/{claim['id']}/receipt", headers=other_program.headers)).status_code == 404


@pytest.mark.parametrize("fmt", ["PNG", "HEIF"])
async def test_png_and_heic_photos_become_clean_jpegs_too(client, fmt) -> None:  # type: ignore[no-untyped-def]
    program, me, claim = await claimant(client)
    big = photo(fmt, size=(3000, 1000))
    # What the phone says the type is does not matter: the bytes do.
    assert (await send(client, me, claim["id"], big, kind="application/octet-stream")).status_code == 200
    stored = Image.open(io.BytesIO((await client.get(f"/v1/claims/{claim['id']}/receipt",
                                                     headers=program.headers)).content))
    assert stored.format == "JPEG" and stored.size == (2000, 667) and dict(stored.getexif()) == {}


async def test_what_is_not_a_photo_is_refused_and_nothing_is_kept(client) -> None:  # type: ignore[no-untyped-def]
    program, me, claim = await claimant(client)
    for body in [b"%PDF-1.7 not a photo", b"\xff\xd8\xff\xe0" + b"\x00" * 200, b""]:
        refused = await send(client, me, claim["id"], body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["invalid_params"][0]["name"] == "receipt"
    too_big = await send(client, me, claim["id"], b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024 + 100_000))
    assert too_big.status_code == 413
    assert (await client.get(f"/v1/claims/{claim['id']}/receipt", headers=program.headers)).status_code == 404
    assert (await client.get(f"/v1/me/claims/{claim['id']}", headers=me)).json()["receipt_at"] is None


async def test_a_rejected_claim_is_fixed_and_sent_again_with_its_receipt(client) -> None:  # type: ignore[no-untyped-def]
    program, me, claim = await claimant(client)
    assert (await send(client, me, claim["id"], photo("JPEG"))).status_code == 200
    early = await client.post(f"/v1/me/claims/{claim['id']}/resubmit", headers=me, json={
        "invoice_number": "X", "invoice_date": "2026-11-20", "amount": {"amount": 1, "currency": "USD"},
        "product": "p"})
    assert early.status_code == 409  # only a rejected claim goes back
    rejected = await client.post(f"/v1/claims/{claim['id']}/reject", headers=program.headers,
                                 json={"reason": "the invoice number is cut off in the photo"})
    assert rejected.json()["status"] == "rejected"
    fixed = await client.post(f"/v1/me/claims/{claim['id']}/resubmit", headers=me, json={
        "invoice_number": random_ref("INV-FULL"), "invoice_date": "2026-11-20",
        "amount": {"amount": 45_000, "currency": "USD"}, "product": "ThermoPro 200"})
    assert fixed.status_code == 200, fixed.text
    body = fixed.json()
    assert (body["status"], body["resubmissions"], body.get("decision_reason")) == ("pending", 1, None)
    assert body["receipt_at"] is not None and body["invoice_number"].startswith("INV-FULL")
    approved = await client.post(f"/v1/claims/{claim['id']}/approve", headers=program.headers)
    assert approved.json()["status"] == "approved"
    assert (await send(client, me, claim["id"], photo("JPEG"))).status_code == 409
