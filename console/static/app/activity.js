import { call } from "./api.js";
import { fill, h, when } from "./dom.js";

const KINDS = { grant: "Granted", deduction: "Deducted", award: "Earned", redemption: "Redeemed", spin: "Spin",
                expiry: "Expired", refund: "Returned" };

// A list that loads its next page from the API's cursor when its end scrolls into view
// (and from a button, for keyboards and screen readers).
function pagedList(title, path, line, app) {
  const list = h("ul", { class: "list" });
  const more = h("button", { type: "button", class: "quiet" }, `More ${title.toLowerCase()}`);
  let cursor;
  let loading = false;
  async function load() {
    if (loading || cursor === null) return;
    loading = true;
    const sep = path.includes("?") ? "&" : "?";
    const page = await call(`${path}${sep}limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    list.append(...page.items.map((item) => line(item, app)));
    if (!list.children.length) list.append(h("li", {}, "Nothing yet."));
    cursor = page.next_cursor;
    more.hidden = cursor === null;
    loading = false;
  }
  more.addEventListener("click", load);
  const section = h("section", { "aria-label": title }, h("h2", {}, title), list, more);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) load(); }).observe(more);
  }
  return { section, load };
}

function transactionLine(t, app) {
  const sign = t.points > 0 ? "+" : "";
  return h("li", {},
    h("span", {}, `${KINDS[t.kind] || t.kind}: ${sign}${t.points} ${app.pointName}`),
    h("span", { class: "meta" }, `${t.reason || t.reference || ""}${t.reason || t.reference ? " · " : ""}${when(t.created_at)}`));
}

function spinLine(s, app) {
  return h("li", {},
    h("span", {}, `Spin: ${s.label}`),
    h("span", { class: "meta" }, `${s.cost_points ? `${s.cost_points} ${app.pointName}` : "free"} · ${when(s.created_at)} · `,
      h("a", { href: `#/play/${encodeURIComponent(s.campaign_id)}/proof/${encodeURIComponent(s.id)}` }, "proof")));
}

export async function render(view, app) {
  const transactions = pagedList("Transactions", "/v1/me/transactions", transactionLine, app);
  const spins = pagedList("Spins", "/v1/me/spins", spinLine, app);
  fill(view, h("h1", {}, "Activity"), transactions.section, spins.section);
  await Promise.all([transactions.load(), spins.load()]);
}
