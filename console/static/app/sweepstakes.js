import { Problem, call, newKey } from "./api.js";
import { alertBox, h, when } from "./dom.js";

// Play's sweepstakes: the open ones with their odds and official rules, my tickets, and
// entering (one Idempotency-Key per tap of Enter).
export async function section(app) {
  const [page, mine] = await Promise.all([call("/v1/me/sweepstakes?limit=20"),
                                          call("/v1/me/sweepstakes-entries?limit=20")]);
  return [
    h("section", { "aria-labelledby": "sweepstakes-heading" },
      h("h2", { id: "sweepstakes-heading" }, "Sweepstakes"),
      page.items.length
        ? h("ul", { class: "items" }, page.items.map((entry) => card(entry, app)))
        : h("p", {}, "No sweepstakes open right now.")),
    myEntries(mine.items, app.pointName)];
}

const OUTCOME = { open: "Open: the draw comes after it closes", awaiting_draw: "Closed: waiting for the draw",
                  won: "You won", alternate: "Alternate: you win if a winner forfeits", not_won: "Not won this time" };

// Every sweepstakes I hold tickets in, past ones with what the draw made of me and its proof.
export function myEntries(items, pointName) {
  return h("section", { "aria-labelledby": "my-entries-heading" },
    h("h2", { id: "my-entries-heading" }, "My entries"),
    items.length
      ? h("ul", { class: "list", "data-testid": "my-entries" }, items.map((e) => h("li", { class: e.outcome },
          h("span", {}, e.name),
          h("span", { class: "meta" }, `${e.my_tickets} of ${e.total_tickets} tickets · `
            + (e.drawn_at ? `drawn ${when(e.drawn_at)}` : `closes ${when(e.closes_at)}`)),
          h("span", { class: e.outcome === "won" ? "ok" : "" }, OUTCOME[e.outcome] || e.outcome,
            e.outcome === "won" && e.prize ? `: ${prizeText(e.prize, pointName)}` : ""),
          e.drawn_at ? h("a", { href: e.proof_url, rel: "noopener" }, `Proof of the draw: ${e.name}`) : null)))
      : h("p", {}, "You have not entered a sweepstakes yet."));
}

function prizeText(prize, pointName) {
  if (prize.type === "points") return `${prize.points} ${pointName}`;
  return prize.description || "a reward";
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
