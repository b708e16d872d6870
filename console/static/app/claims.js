// Claims: file a sale with its invoice and a photo of the receipt taken with the phone's
// camera, see it approved or rejected with the reason, fix it and send it again.
import { call, newKey, upload } from "./api.js";
import { alertBox, fill, h, when } from "./dom.js";

const STATUS = { pending: "Waiting for a manager", approved: "Approved", rejected: "Rejected",
                 duplicate: "Already claimed by someone" };

export async function render(view, app, params, query) {
  const mine = await call("/v1/me/claims?limit=50");
  const fixing = query.get("fix") ? mine.items.find((c) => c.id === query.get("fix")) : null;
  fill(view,
    h("h1", {}, fixing ? "Fix your claim" : "Claim a sale"),
    fixing && fixing.decision_reason ? h("p", {}, `Why it was rejected: ${fixing.decision_reason}`) : null,
    claimForm(fixing),
    fixing ? null : h("h2", {}, "My claims"),
    fixing ? null : (mine.items.length
      ? h("ul", { class: "list" }, mine.items.map(claimLine))
      : h("p", {}, "No claims yet.")),
  );
}

function claimLine(claim) {
  const amount = (claim.amount.amount / 100).toFixed(2);
  return h("li", {},
    h("strong", {}, `${claim.product}: invoice ${claim.invoice_number}`),
    h("span", {}, `${amount} ${claim.amount.currency}, sold ${claim.invoice_date}`),
    h("span", { class: claim.status === "rejected" ? "alert" : "meta" }, STATUS[claim.status] || claim.status,
      claim.status === "rejected" && claim.decision_reason ? `: ${claim.decision_reason}` : ""),
    claim.receipt_at ? h("span", { class: "meta" }, `Receipt sent ${when(claim.receipt_at)}`) : null,
    claim.status === "rejected"
      ? h("a", { href: `#/claims?fix=${encodeURIComponent(claim.id)}`, class: "button" }, "Fix and send again")
      : null);
}

function field(id, label, attrs) {
  return [h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attrs })];
}

function claimForm(fixing) {
  const status = h("div", { role: "status" });
  const preview = h("img", { alt: "Your receipt photo", class: "receipt", hidden: true });
  const photo = h("input", { id: "claim-photo", name: "photo", type: "file", accept: "image/jpeg,image/png,image/heic,image/heif",
                             capture: "environment", onchange: () => {
    const file = photo.files[0];
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  } });
  const today = new Date().toISOString().slice(0, 10);
  const key = newKey();  // one per form: a double tap on Send files one claim
  const form = h("form", { class: "claim", onsubmit: async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    fill(status, h("p", {}, "Sending…"));
    const data = new FormData(form);
    const cents = Math.round(Number(data.get("amount")) * 100);
    const body = { invoice_number: String(data.get("invoice")).trim(), invoice_date: String(data.get("sold")),
                   amount: { amount: cents, currency: "USD" }, product: String(data.get("product")).trim() };
    try {
      const claim = fixing
        ? await call(`/v1/me/claims/${encodeURIComponent(fixing.id)}/resubmit`, { method: "POST", body })
        : await call("/v1/me/claims", { method: "POST", body, idempotencyKey: key });
      const file = photo.files[0];
      if (file) {
        if (file.size > 10 * 1024 * 1024) throw new Error("The photo is over 10 MB: take it again closer up.");
        await upload(`/v1/me/claims/${encodeURIComponent(claim.id)}/receipt`, file);
      }
      location.hash = "#/claims";
      if (!fixing) await render(document.getElementById("view"), null, {}, new URLSearchParams());
    } catch (error) {
      button.disabled = false;
      fill(status, alertBox(error.message));
    }
  } },
    field("invoice", "Invoice number", { value: fixing ? fixing.invoice_number : "", autocomplete: "off" }),
    field("sold", "Date of the sale", { type: "date", max: today, value: fixing ? fixing.invoice_date : today }),
    field("amount", "Amount in dollars", { type: "number", min: "0.01", step: "0.01", inputmode: "decimal",
                                          value: fixing ? (fixing.amount.amount / 100).toFixed(2) : "" }),
    field("product", "Product", { value: fixing ? fixing.product : "", autocomplete: "off" }),
    h("label", { for: "claim-photo" }, fixing && fixing.receipt_at ? "A new photo of the receipt (optional)"
                                                                     : "Photo of the receipt"),
    photo, preview,
    h("button", { type: "submit", class: "primary" }, fixing ? "Send again" : "Send claim"),
    status);
  return form;
}
