import { call } from "./api.js";
import { fill, h, when } from "./dom.js";
import { reminder } from "./tax.js";

export async function render(view, app) {
  const [wallet, feed, taxLine] = await Promise.all([call("/v1/me/wallet"), call("/v1/me/feed?limit=5"),
                                                    reminder()]);
  const expiring = wallet.expiring || [];
  fill(view, 
    h("h1", {}, "Your points"),
    h("p", { class: "balance" },
      h("span", { class: "number", "data-testid": "balance" }, String(wallet.available)), " ",
      h("span", { class: "unit" }, app.pointName)),
    wallet.held ? h("p", {}, `${wallet.held} ${app.pointName} held for rewards on their way`) : null,
    pending(wallet, app.pointName),
    expiring.length
      ? h("p", {}, `${expiring[0].points} ${app.pointName} expire on ${when(expiring[0].expires_at)}`)
      : null,
    taxLine,
    h("p", {}, h("a", { href: "#/claims", class: "button" }, "Claim a sale")),
    h("h2", {}, "Latest"),
    feed.items.length
      ? h("ul", { class: "list" }, feed.items.map((line) =>
          h("li", {}, h("span", {}, line.text), h("span", { class: "meta" }, when(line.created_at)))))
      : h("p", {}, "Nothing yet: your points and news will show here."),
  );
}

// Points earned but not yet released (a claim's or an activity's waiting period): the total
// and each lot's release day. Nothing when the wallet has none (or an older server sends no
// `pending` at all).
export function pending(wallet, pointName) {
  if (!(wallet.pending > 0)) return null;
  const lots = (wallet.pending_lots || []).filter((lot) => lot.points > 0);
  return h("section", { class: "pending", "aria-labelledby": "pending-heading" },
    h("h2", { id: "pending-heading" }, "Pending"),
    h("p", {}, h("span", { "data-testid": "pending" }, String(wallet.pending)), ` ${pointName} on their way`),
    lots.length
      ? h("ul", {}, lots.map((lot) => h("li", {},
          `${lot.points} ${pointName}`,
          lot.reason ? ` · ${lot.reason}` : "",
          lot.releases_at ? ` · released ${when(lot.releases_at)}` : " · released once approved")))
      : null);
}
