// The tax form (a W-9): rewards of the year's threshold or more are reported for taxes, and
// the program needs the salesperson's legal name, address and taxpayer id for that.
import { call } from "./api.js";
import { alertBox, fill, h } from "./dom.js";

const money = (minor, currency) => `${(minor / 100).toLocaleString(undefined, { style: "currency", currency })}`;

export async function render(view) {
  const summary = await call("/v1/me/tax-profile");
  const profile = summary.profile;
  const status = h("div", { role: "status" });
  const input = (id, label, attrs = {}) => [h("label", { for: id }, label),
                                           h("input", { id, name: id, required: true, autocomplete: "off", ...attrs })];
  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { legal_name: String(data.get("legal-name")).trim(), tin: String(data.get("tin")).trim(),
                   tin_type: String(data.get("tin-type")), certified: data.get("certify") === "on",
                   address: { line1: String(data.get("line1")).trim(), city: String(data.get("city")).trim(),
                              state: String(data.get("state")).trim().toUpperCase(),
                              postal_code: String(data.get("zip")).trim() } };
    const line2 = String(data.get("line2") || "").trim();
    if (line2) body.address.line2 = line2;
    try {
      await call("/v1/me/tax-profile", { method: "PUT", body });
      await render(view);
      view.querySelector("[role=status]").replaceChildren(h("p", {}, "Thank you: your tax form is on file."));
    } catch (error) {
      fill(status, alertBox(error.message));
    }
  } },
    input("legal-name", "Legal name (as on your tax return)", { autocomplete: "name" }),
    h("label", { for: "tin-type" }, "Taxpayer id type"),
    h("select", { id: "tin-type", name: "tin-type" }, h("option", { value: "ssn" }, "Social Security number"),
      h("option", { value: "ein" }, "Employer identification number")),
    input("tin", "Taxpayer id number", { inputmode: "numeric", minlength: 9, maxlength: 11 }),
    input("line1", "Street address", { autocomplete: "address-line1" }),
    input("line2", "Apartment or suite (optional)", { required: false, autocomplete: "address-line2" }),
    input("city", "City", { autocomplete: "address-level2" }),
    input("state", "State (2 letters)", { maxlength: 2, autocomplete: "address-level1" }),
    input("zip", "ZIP code", { inputmode: "numeric", autocomplete: "postal-code" }),
    h("p", { class: "check" }, h("input", { id: "certify", name: "certify", type: "checkbox", required: true }),
      h("label", { for: "certify" }, "I certify that this information is correct")),
    h("button", { type: "submit", class: "primary" }, profile.status === "received" ? "Replace my form" : "Send my form"),
    status);
  fill(view,
    h("h1", {}, "Tax form"),
    h("p", {}, `Rewards of ${money(summary.threshold, summary.currency)} or more in ${summary.year} are reported `
      + `for taxes. Yours so far: ${money(summary.reportable, summary.currency)}.`),
    profile.status === "received"
      ? h("p", {}, `On file: ${profile.legal_name}, taxpayer id ending ${profile.tin_last4}.`)
      : h("p", {}, "We keep your form encrypted; the program sees your name and the last 4 digits only."),
    form);
}

// A line for Home when the form is asked for or needed.
export async function reminder() {
  const summary = await call("/v1/me/tax-profile");
  const wanted = summary.profile.status === "requested" || summary.form_needed;
  return wanted ? h("p", { class: "alert" }, h("a", { href: "#/tax" }, "Fill in your tax form (W-9)")) : null;
}
