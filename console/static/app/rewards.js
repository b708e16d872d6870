import { Problem, call, newKey } from "./api.js";
import { svg as barcode } from "./barcode.js";
import { alertBox, fill, h, when } from "./dom.js";

const STATUS = { pending: "On its way", claimed: "On its way", fulfilled: "Delivered", failed: "Could not be delivered",
                 cancelled: "Cancelled" };

export async function render(view, app, params, query) {
  const q = query.get("q") || "";
  const brand = query.get("brand") || "";
  const affordable = query.get("affordable") === "1";
  const low = points(query.get("min"));
  const high = points(query.get("max"));
  const wallet = await call("/v1/me/wallet");
  const filters = new URLSearchParams({ limit: "50" });
  if (q) filters.set("q", q);
  if (brand) filters.set("brand", brand);
  if (low !== null) filters.set("min_points", String(low));
  // "What I can afford" and a maximum together: the lower of the two.
  const ceiling = [high, affordable ? Math.max(0, wallet.available) : null].filter((v) => v !== null);
  if (ceiling.length) filters.set("max_points", String(Math.min(...ceiling)));
  const [catalog, orders, brands] = await Promise.all([
    call(`/v1/catalog/items?${filters}`), call("/v1/me/redemptions?limit=20"), call("/v1/catalog/brands?limit=200")]);
  const balance = h("p", { class: "meta" }, `You have ${wallet.available} ${app.pointName}`);
  const cards = h("ul", { class: "list" });
  showCards(cards, orders.items);
  const refreshAfterOrder = async () => {
    const [w, o] = await Promise.all([call("/v1/me/wallet"), call("/v1/me/redemptions?limit=20")]);
    balance.textContent = `You have ${w.available} ${app.pointName}`;
    showCards(cards, o.items);
  };
  const searchField = h("input", { id: "reward-search", type: "search", name: "q", value: q, autocomplete: "off" });
  const brandField = h("select", { id: "reward-brand", name: "brand" },
    h("option", { value: "" }, "All brands"),
    brands.items.map((b) => h("option", { value: b.id, selected: b.id === brand }, b.name)));
  const affordableField = h("input", { id: "reward-affordable", type: "checkbox", checked: affordable });
  const range = (id, value) => h("input", { id, type: "number", inputmode: "numeric", min: 0, step: 1,
                                            value: value === null ? "" : value });
  const lowField = range("reward-min", low);
  const highField = range("reward-max", high);
  fill(view, 
    h("h1", {}, "Rewards"),
    balance,
    h("form", { class: "search", role: "search", onsubmit: (event) => {
        event.preventDefault();
        const wanted = new URLSearchParams();
        if (searchField.value.trim()) wanted.set("q", searchField.value.trim());
        if (brandField.value) wanted.set("brand", brandField.value);
        if (points(lowField.value) !== null) wanted.set("min", String(points(lowField.value)));
        if (points(highField.value) !== null) wanted.set("max", String(points(highField.value)));
        if (affordableField.checked) wanted.set("affordable", "1");
        location.hash = wanted.toString() ? `#/rewards?${wanted}` : "#/rewards";
      } },
      h("label", { for: "reward-search" }, "Search rewards"), searchField,
      h("button", { type: "submit" }, "Search"),
      h("label", { for: "reward-brand" }, "Brand"), brandField,
      h("div", { class: "range" },
        h("p", {}, h("label", { for: "reward-min" }, `Min ${app.pointName}`), lowField),
        h("p", {}, h("label", { for: "reward-max" }, `Max ${app.pointName}`), highField)),
      h("p", { class: "check" }, affordableField, h("label", { for: "reward-affordable" }, "Only what I can afford"))),
    catalog.items.length
      ? h("ul", { class: "items" }, catalog.items.map((item) => itemCard(item, wallet.available, app, refreshAfterOrder)))
      : h("p", {}, "No rewards to show."),
    h("h2", {}, "My cards"),
    cards,
  );
}

// A whole, non-negative number of points from a field or the address, else null.
function points(text) {
  if (text === null || text === undefined || String(text).trim() === "") return null;
  const value = Number(text);
  return Number.isInteger(value) && value >= 0 && value <= 1e12 ? value : null;
}

function itemCard(item, available, app, after) {
  const missing = item.points_price - available;
  const panel = h("div", { class: "confirm" });
  const variable = item.value_type === "variable";
  const valueId = `value-${item.id}`;
  const valueField = variable
    ? h("input", { id: valueId, type: "number", inputmode: "numeric", min: item.min_value.amount / 100,
                   max: item.max_value.amount / 100, value: item.min_value.amount / 100 })
    : null;
  const redeem = h("button", { type: "button", disabled: !variable && missing > 0, onclick: () => {
    // The key is made once, when the person decides to redeem: Confirm, tapped twice or
    // retried after a failure, sends the same order.
    const key = newKey();
    const body = { item_id: item.id };
    let price = item.points_price;
    if (variable) {
      const amount = Math.round(Number(valueField.value) * 100);
      body.face_value = { amount, currency: item.currency };
      price = Math.round((amount / 100) * item.points_per_unit);
    }
    let busy = false;
    const confirm = h("button", { type: "button", class: "primary", onclick: async () => {
      if (busy) return;
      busy = true;
      confirm.disabled = true;
      try {
        const order = await call("/v1/me/redemptions", { method: "POST", body, idempotencyKey: key });
        panel.replaceChildren(h("p", { role: "status" },
          `Ordered: ${item.name} for ${order.points} ${app.pointName}. It shows under My cards.`));
        await after();
      } catch (error) {
        busy = false;
        confirm.disabled = false;
        panel.append(alertBox(error instanceof Problem ? error.message : "No connection: try again."));
      }
    } }, "Confirm");
    panel.replaceChildren(
      h("p", {}, `Redeem ${item.name} for ${price} ${app.pointName}?`),
      h("div", { class: "actions" }, confirm,
        h("button", { type: "button", onclick: () => panel.replaceChildren() }, "Cancel")));
    confirm.focus();
  } }, "Redeem");
  return h("li", { class: "item" },
    h("h3", {}, item.name),
    h("p", { class: "meta" }, item.brand ? item.brand.name : ""),
    h("p", {}, variable ? `${item.points_per_unit} ${app.pointName} per ${item.currency} 1`
                        : `${item.points_price} ${app.pointName}`),
    variable ? h("p", {}, h("label", { for: valueId }, `Value (${item.currency})`), valueField) : null,
    !variable && missing > 0 ? h("p", { class: "needed" }, `${missing} more ${app.pointName} needed`) : null,
    redeem,
    panel);
}

const WAITING = new Set(["pending", "claimed"]);

// While a card is on its way, look again every few seconds (as long as the list is on
// screen) so a delivered card shows its Show code button without a reload.
function watchPending(list) {
  if (list.dataset.watching) return;
  list.dataset.watching = "yes";
  let rounds = 0;
  const tick = async () => {
    if (!list.isConnected || rounds > 150) return;
    rounds += 1;
    try {
      const page = await call("/v1/me/redemptions?limit=20");
      if (statusesOf(page.items) !== list.dataset.statuses) showCards(list, page.items);
      if (!page.items.some((o) => WAITING.has(o.status))) {
        delete list.dataset.watching;
        return;
      }
    } catch (error) {
      // Offline for a moment: look again at the next tick.
    }
    setTimeout(tick, 4000);
  };
  setTimeout(tick, 4000);
}

function statusesOf(orders) {
  return orders.map((o) => `${o.id}:${o.status}`).join(",");
}

function showCards(list, orders) {
  list.dataset.statuses = statusesOf(orders);
  if (orders.some((o) => WAITING.has(o.status))) watchPending(list);
  if (!orders.length) {
    list.replaceChildren(h("li", {}, "No cards yet: redeem a reward above."));
    return;
  }
  list.replaceChildren(...orders.map(cardLine));
}

function cardLine(order) {
  const secret = h("div", { class: "secret", id: `code-${order.id}`, hidden: true });
  const children = [
    h("span", {}, order.item_name),
    h("span", { class: "meta" }, `${STATUS[order.status] || order.status} · ${when(order.created_at)}`),
  ];
  if (order.status === "failed" && order.failure_reason) children.push(h("span", { class: "meta" }, order.failure_reason));
  if (order.status === "fulfilled") {
    const show = h("button", { type: "button", "aria-expanded": "false", "aria-controls": secret.id, onclick: async () => {
      if (!secret.hidden) {
        secret.hidden = true;
        secret.replaceChildren();
        show.setAttribute("aria-expanded", "false");
        show.textContent = "Show code";
        return;
      }
      try {
        // Read fresh on each tap: the code is never kept in a list or any cache.
        const full = await call(`/v1/me/redemptions/${encodeURIComponent(order.id)}`);
        secret.replaceChildren(...credentialLines(full));
      } catch (error) {
        secret.replaceChildren(alertBox(error.message || "Could not load the code"));
      }
      secret.hidden = false;
      show.setAttribute("aria-expanded", "true");
      show.textContent = "Hide code";
    } }, "Show code");
    children.push(show, secret);
  }
  return h("li", { class: "card" }, ...children);
}

// A delivered card, line by line as the partner labelled it (credential_list): codes and
// PINs with a Copy button, a barcode line also drawn as a Code 128 barcode, the expiry as a
// date. Built from the answer of this tap only: nothing here is stored or cached.
function credentialLines(order) {
  const lines = order.credential_list && order.credential_list.length
    ? order.credential_list : fromObject(order.credentials || {});
  const out = lines.map((line) => {
    if (line.type === "url") return h("p", {}, h("a", { href: line.value, rel: "noopener" }, line.label || "Open the card"));
    if (line.type === "expiry") return h("p", { class: "meta" }, `${line.label || "Expires"}: ${day(line.value)}`);
    const value = h("code", { class: "code" }, line.value);
    const parts = [h("p", {}, `${line.label}: `, value, " ", copyButton(line))];
    if (line.type === "barcode") {
      const drawn = barcode(line.value, `Barcode of ${line.label}: ${line.value}`);
      if (drawn) parts.push(drawn);
    }
    return parts;
  }).flat();
  const instructions = (order.credentials && order.credentials.instructions) || order.redemption_instructions;
  if (instructions) out.push(h("p", { class: "meta" }, instructions));
  return out;
}

function fromObject(c) {
  return [["code", "Code", c.code], ["pin", "PIN", c.pin], ["url", "Open the card", c.url],
          ["expiry", "Expires", c.expires_at]]
    .filter(([, , value]) => value).map(([type, label, value]) => ({ type, label, value }));
}

// A date alone ("2028-12-31") stays that day wherever the phone is; a time shows local.
function day(value) {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const [y, m, d] = value.split("-").map(Number);
    return new Date(y, m - 1, d).toLocaleDateString(undefined, { dateStyle: "medium" });
  }
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? value : when(value);
}

function copyButton(line) {
  if (!navigator.clipboard) return null;
  const what = line.type === "pin" ? "PIN" : line.label;
  const button = h("button", { type: "button", class: "quiet", "aria-label": `Copy ${what}`, onclick: async () => {
    try {
      await navigator.clipboard.writeText(line.value);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed";
    }
  } }, "Copy");
  return button;
}
