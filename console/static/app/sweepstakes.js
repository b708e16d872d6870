import { Problem, call, newKey } from "./api.js";
import { alertBox, h, when } from "./dom.js";

// Play's sweepstakes: the open ones with their odds and official rules, my tickets, and
// entering (one Idempotency-Key per tap of Enter).
export async function section(app) {
  const page = await call("/v1/me/sweepstakes?limit=20");
  return h("section", { "aria-labelledby": "sweepstakes-heading" },
    h("h2", { id: "sweepstakes-heading" }, "Sweepstakes"),
    page.items.length
      ? h("ul", { class: "items" }, page.items.map((entry) => card(entry, app)))
      : h("p", {}, "No sweepstakes open right now."));
}

function card(entry, app) {
  const s = entry.sweepstakes;
  const mine = h("p", {}, `My tickets: ${entry.my_tickets} (up to ${entry.my_tickets + entry.tickets_left})`);
  const note = h("div", { "aria-live": "polite" });
  const fieldId = `tickets-${s.id}`;
  const field = h("input", { id: fieldId, type: "number", inputmode: "numeric", min: 1,
                             max: Math.max(1, entry.tickets_left), value: 1 });
  let busy = false;
  const enter = h("button", { type: "submit", class: "primary", disabled: entry.tickets_left < 1 }, "Enter");
  const form = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      if (busy) return;
      busy = true;
      enter.disabled = true;
      try {
        const done = await call(`/v1/me/sweepstakes/${encodeURIComponent(s.id)}/entries`,
          { method: "POST", body: { count: Number(field.value) }, idempotencyKey: newKey() });
        const fresh = await call(`/v1/me/sweepstakes/${encodeURIComponent(s.id)}`);
        mine.textContent = `My tickets: ${fresh.my_tickets} (up to ${fresh.my_tickets + fresh.tickets_left})`;
        note.replaceChildren(h("p", { role: "status" }, `Entered: ${done.count} more ticket${done.count === 1 ? "" : "s"}.`));
      } catch (error) {
        note.replaceChildren(alertBox(error instanceof Problem ? error.message : "No connection: try again."));
      } finally {
        busy = false;
        enter.disabled = false;
      }
    } },
    h("label", { for: fieldId }, "Tickets"), field, enter);
  return h("li", { class: "item" },
    h("h3", {}, s.name),
    h("p", {}, s.entry_cost_points ? `${s.entry_cost_points} ${app.pointName} a ticket` : "Free to enter"),
    h("p", { class: "meta" }, s.odds.text),
    h("p", { class: "meta" }, `Closes ${when(s.closes_at)}`),
    mine, form, note,
    h("details", {}, h("summary", {}, "Official rules"), h("p", { class: "rules" }, s.rules)));
}
