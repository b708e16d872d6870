"""A salesperson files a sale claim with a photo of the receipt from the phone, sees it
rejected with the reason, fixes it and sends it again; the manager sees the cleaned photo."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image
from playwright.async_api import expect

from tests.console.conftest import axe_violations, screenshot
from tests.factories import new_participant, new_program, random_ref


def receipt_photo() -> bytes:
    image = Image.new("RGB", (1200, 1600), (245, 245, 240))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


async def test_a_claim_with_a_receipt_photo_is_rejected_fixed_and_sent_again(phone_page: Any, live_server: Any) -> None:
    page = phone_page
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as api:
        program = await new_program(api)
        person = await new_participant(api, program, display_name="Lee Seller")
        link = (await api.post(f"/v1/participants/{person['id']}/sign-in-links", headers=program.headers)).json()
        await page.goto(link["url"])
        await expect(page.get_by_role("heading", name="Your points")).to_be_visible()

        await page.get_by_role("link", name="Claim a sale").click()
        await expect(page.get_by_role("heading", name="Claim a sale")).to_be_visible()
        invoice = random_ref("INV")
        await page.get_by_label("Invoice number").fill(invoice)
        await page.get_by_label("Amount in dollars").fill("450.00")
        await page.get_by_label("Product").fill("ThermoPro 200")
        await page.get_by_label("Photo of the receipt").set_input_files(
            {"name": "receipt.jpg", "mimeType": "image/jpeg", "buffer": receipt_photo()})
        await expect(page.get_by_role("img", name="Your receipt photo")).to_be_visible()
        assert not await axe_violations(page)
        await page.get_by_role("button", name="Send claim").click()
        await expect(page.get_by_text("Waiting for a manager")).to_be_visible()
        await expect(page.get_by_text("Receipt sent")).to_be_visible()
        await screenshot(page, "app-claims")

        [claim] = (await api.get("/v1/claims", params={"participant_id": person["id"]},
                                 headers=program.headers)).json()["items"]
        photo = await api.get(f"/v1/claims/{claim['id']}/receipt", headers=program.headers)
        assert photo.status_code == 200 and b"PhoneMaker" not in photo.content
        assert Image.open(io.BytesIO(photo.content)).size == (1200, 1600)
        rejected = await api.post(f"/v1/claims/{claim['id']}/reject", headers=program.headers,
                                  json={"reason": "the invoice number does not match the receipt"})
        assert rejected.status_code == 200

        await page.reload()
        await expect(page.get_by_text("the invoice number does not match the receipt")).to_be_visible()
        await page.get_by_role("link", name="Fix and send again").click()
        await expect(page.get_by_role("heading", name="Fix your claim")).to_be_visible()
        await page.get_by_label("Invoice number").fill(invoice + "-A")
        await page.get_by_role("button", name="Send again").click()
        await expect(page.get_by_text("Waiting for a manager")).to_be_visible()
        again = (await api.get(f"/v1/claims/{claim['id']}", headers=program.headers)).json()
        assert (again["status"], again["invoice_number"], again["resubmissions"]) == ("pending", invoice + "-A", 1)
        assert again["receipt_at"] is not None
        assert not await axe_violations(page)


async def test_a_requested_tax_form_is_filled_in_from_home(phone_page: Any, live_server: Any) -> None:
    page = phone_page
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as api:
        program = await new_program(api)
        person = await new_participant(api, program, display_name="Kim Seller")
        asked = await api.post(f"/v1/participants/{person['id']}/tax-profile/request", headers=program.headers)
        assert asked.status_code == 200
        link = (await api.post(f"/v1/participants/{person['id']}/sign-in-links", headers=program.headers)).json()
        await page.goto(link["url"])
        await page.get_by_role("link", name="Fill in your tax form (W-9)").click()
        await expect(page.get_by_role("heading", name="Tax form")).to_be_visible()
        await page.get_by_label("Legal name (as on your tax return)").fill("Kim Q. Seller")
        await page.get_by_label("Taxpayer id number").fill("123-45-6789")
        await page.get_by_label("Street address").fill("1 Main St")
        await page.get_by_label("City").fill("Springfield")
        await page.get_by_label("State (2 letters)").fill("il")
        await page.get_by_label("ZIP code").fill("62701")
        await page.get_by_label("I certify that this information is correct").check()
        assert not await axe_violations(page)
        await page.get_by_role("button", name="Send my form").click()
        await expect(page.get_by_text("On file: Kim Q. Seller, taxpayer id ending 6789.")).to_be_visible()
        await screenshot(page, "app-tax-form")
        seen = (await api.get(f"/v1/participants/{person['id']}/tax-profile", headers=program.headers)).json()
        assert seen["profile"]["status"] == "received" and "123456789" not in str(seen)
        await page.get_by_role("link", name="Home").click()
        await expect(page.get_by_role("heading", name="Your points")).to_be_visible()
        assert await page.get_by_role("link", name="Fill in your tax form (W-9)").count() == 0
