import { call } from "./api.js";
import { fill, h, when } from "./dom.js";

export async function render(view, app) {
  const [wallet, feed] = await Promise.all([call("/v1/me/wallet"), call("/v1/me/feed?limit=5")]);
  const expiring = wallet.expiring || [];
  fill(view, 
    h("h1", {}, "Your points"),
    h("p", { class: "balance" },
      h("span", { class: "number", "data-testid": "balance" }, String(wallet.available)), " ",
      h("span", { class: "unit" }, app.pointName)),
    wallet.held ? h("p", {}, `${wallet.held} ${app.pointName} held for rewards on their way`) : null,
    expiring.length
      ? h("p", {}, `${expiring[0].points} ${app.pointName} expire on ${when(expiring[0].expires_at)}`)
      : null,
    h("h2", {}, "Latest"),
    feed.items.length
      ? h("ul", { class: "list" }, feed.items.map((line) =>
          h("li", {}, h("span", {}, line.text), h("span", { class: "meta" }, when(line.created_at)))))
      : h("p", {}, "Nothing yet: your points and news will show here."),
  );
}
