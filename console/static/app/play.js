import { Problem, call, newKey } from "./api.js";
import { alertBox, fill, h, percent, when } from "./dom.js";
import { available as cryptoAvailable, verifySpin } from "./fair.js";
import { section as sweepstakesSection } from "./sweepstakes.js";

async function campaign(id) {
  const page = await call("/v1/me/campaigns?limit=200");
  return page.items.find((c) => c.id === id) || null;
}

function spinsLine(c) {
  return c.max_spins_per_day
    ? `${c.spins_today} of ${c.max_spins_per_day} spins today`
    : `${c.spins_today} spins today (no daily limit)`;
}

function odds(c) {
  return h("table", { class: "odds" },
    h("caption", {}, `Odds of ${c.name}`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Prize"), h("th", { scope: "col" }, "Chance"))),
    h("tbody", {}, c.segments.map((s, i) => h("tr", { "data-segment": i },
      h("td", {}, s.label, s.in_stock ? "" : " (out of stock)"), h("td", {}, percent(s.probability))))));
}

export async function render(view, app) {
  const [page, fairness, sweepstakes] = await Promise.all([
    call("/v1/me/campaigns?limit=50"), call("/v1/me/fairness"), sweepstakesSection(app)]);
  fill(view, 
    h("h1", {}, "Play"),
    page.free_spins ? h("p", {}, `You have ${page.free_spins} free spins.`) : null,
    page.items.length
      ? h("ul", { class: "items" }, page.items.map((c) => h("li", { class: "item" },
          h("h2", {}, h("a", { href: `#/play/${encodeURIComponent(c.id)}` }, c.name)),
          h("p", {}, c.cost_points ? `${c.cost_points} ${app.pointName} a spin` : "Free to spin"),
          h("p", { class: "meta" }, spinsLine(c)),
          h("details", {}, h("summary", {}, "Odds"), odds(c)))))
      : h("p", {}, "No wheels to spin right now."),
    sweepstakes,
    seedsSection(fairness, () => render(view, app)),
  );
}

function seedsSection(fairness, again) {
  const field = h("input", { id: "client-seed", name: "client_seed", value: fairness.client_seed, maxlength: 64,
                             autocomplete: "off", spellcheck: "false" });
  const note = h("div", { "aria-live": "polite" });
  return h("section", { class: "seeds", "aria-labelledby": "seeds-heading" },
    h("h2", { id: "seeds-heading" }, "Your seeds"),
    h("p", { class: "meta" }, "Every spin is decided by the server seed (committed below before you spin), your client "
      + "seed and a counter. Rotate to reveal the server seed and check your spins."),
    h("p", {}, "Commitment: ", h("code", { class: "wrap" }, fairness.server_seed_hash)),
    h("p", {}, `Spins under this pair: ${fairness.nonce}`),
    h("form", { onsubmit: async (event) => {
        event.preventDefault();
        try {
          await call("/v1/me/fairness/client-seed", { method: "PUT", body: { client_seed: field.value.trim() } });
          await again();
        } catch (error) {
          note.replaceChildren(alertBox(error.message));
        }
      } },
      h("label", { for: "client-seed" }, "Client seed"), field,
      h("button", { type: "submit" }, "Set client seed")),
    h("button", { type: "button", onclick: async () => {
      const rotation = await call("/v1/me/fairness/rotate", { method: "POST" });
      await again();
      document.getElementById("view").append(h("p", { role: "status" },
        "Revealed server seed: ", h("code", { class: "wrap" }, rotation.revealed.server_seed)));
    } }, "Rotate seed"),
    note);
}

const COLOURS = ["#0b4f8a", "#f2a900", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#ef6c00", "#455a64"];

// The wheel itself (decorative: the odds table says the same in words). Its slices follow
// the configured weights; a spin turns it until the server's segment is under the pointer.
function wheelOf(c) {
  const total = c.segments.reduce((sum, s) => sum + s.weight, 0) || 1;
  let at = 0;
  const stops = c.segments.map((s, i) => {
    const from = (at / total) * 360;
    at += s.weight;
    return `${s.color || COLOURS[i % COLOURS.length]} ${from}deg ${(at / total) * 360}deg`;
  });
  const disc = h("div", { class: "disc" });
  disc.style.background = `conic-gradient(${stops.join(", ")})`;
  const box = h("div", { class: "wheel", "aria-hidden": "true" }, h("div", { class: "pointer" }), disc);
  let turned = 0;
  box.turnTo = (index) => new Promise((resolve) => {
    const before = c.segments.slice(0, index).reduce((sum, s) => sum + s.weight, 0);
    const middle = ((before + c.segments[index].weight / 2) / total) * 360;
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    turned += 360 * 4 + ((360 - middle - (turned % 360)) % 360 + 360) % 360;
    disc.style.transitionDuration = still ? "0s" : "1.6s";
    disc.style.transform = `rotate(${turned}deg)`;
    setTimeout(resolve, still ? 0 : 1700);
  });
  return box;
}

export async function renderWheel(view, app, params) {
  const c = await campaign(params.id);
  if (!c) {
    fill(view, h("h1", {}, "Wheel not found"), h("p", {}, h("a", { href: "#/play" }, "Back to Play")));
    return;
  }
  const result = h("div", { class: "result", "aria-live": "polite" });
  const count = h("p", { class: "meta" }, spinsLine(c));
  const wheel = odds(c);
  const disc = wheelOf(c);
  let busy = false;
  const spin = h("button", { type: "button", class: "primary big", onclick: async () => {
    if (busy) return;
    busy = true;
    spin.disabled = true;
    const key = newKey();
    try {
      const outcome = await call(`/v1/me/campaigns/${encodeURIComponent(c.id)}/spins`,
        { method: "POST", idempotencyKey: key });
      result.replaceChildren(h("p", {}, "Spinning…"));
      await disc.turnTo(outcome.segment_index);
      for (const row of wheel.querySelectorAll("tr[data-segment]")) {
        row.classList.toggle("won", Number(row.dataset.segment) === outcome.segment_index);
      }
      result.replaceChildren(
        h("h2", {}, `You won: ${outcome.label}`),
        h("p", {}, `Balance: ${outcome.balance.available} ${app.pointName}`),
        h("p", {}, h("a", { href: `#/play/${encodeURIComponent(c.id)}/proof/${encodeURIComponent(outcome.id)}` },
          "How this was decided")));
      const fresh = await campaign(c.id);
      if (fresh) count.textContent = spinsLine(fresh);
    } catch (error) {
      result.replaceChildren(alertBox(error instanceof Problem ? error.message : "No connection: try again."));
    } finally {
      busy = false;
      spin.disabled = false;
    }
  } }, "Spin");
  fill(view, 
    h("h1", {}, c.name),
    c.description ? h("p", {}, c.description) : null,
    h("p", {}, c.cost_points ? `${c.cost_points} ${app.pointName} a spin` : "Free to spin"),
    count, disc, spin, result, wheel,
    h("p", {}, h("a", { href: "#/play" }, "Back to Play")));
}

async function findSpin(campaignId, spinId) {
  let cursor = null;
  for (let pages = 0; pages < 10; pages += 1) {
    const page = await call(`/v1/me/spins?limit=200&campaign_id=${encodeURIComponent(campaignId)}`
      + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
    const found = page.items.find((s) => s.id === spinId);
    if (found || !page.next_cursor) return found || null;
    cursor = page.next_cursor;
  }
  return null;
}

export async function renderProof(view, app, params) {
  const spin = await findSpin(params.id, params.spin);
  if (!spin) {
    fill(view, h("h1", {}, "Spin not found"), h("p", {}, h("a", { href: "#/play" }, "Back to Play")));
    return;
  }
  const proof = { ...spin.proof, segment_index: spin.segment_index };
  const file = new Blob([JSON.stringify(proof, null, 2)], { type: "application/json" });
  const download = h("a", { href: URL.createObjectURL(file), download: `spin-${spin.id}.json` }, "Download the proof");
  const verdict = h("div", { "aria-live": "polite" });
  fill(view, 
    h("h1", {}, "How this was decided"),
    h("p", {}, `${spin.label}, on ${when(spin.created_at)}`),
    h("dl", { class: "proof" },
      h("dt", {}, "Algorithm"), h("dd", {}, proof.algorithm),
      h("dt", {}, "Commitment (server seed hash)"), h("dd", {}, h("code", { class: "wrap" }, proof.server_seed_hash)),
      h("dt", {}, "Client seed"), h("dd", {}, h("code", { class: "wrap" }, proof.client_seed)),
      h("dt", {}, "Nonce"), h("dd", {}, String(proof.nonce)),
      h("dt", {}, "Weights"), h("dd", {}, proof.weights.join(", ")),
      h("dt", {}, "Segment"), h("dd", {}, String(proof.segment_index)),
      proof.server_seed ? [h("dt", {}, "Server seed"), h("dd", {}, h("code", { class: "wrap" }, proof.server_seed))] : null),
    verdict,
    h("p", {}, download),
    h("p", {}, h("a", { href: `#/play/${encodeURIComponent(params.id)}` }, "Back to the wheel")));
  if (!proof.server_seed) {
    verdict.replaceChildren(
      h("p", {}, "The server seed is still secret, so this spin cannot be checked yet. Rotate your seed to reveal "
        + "it (your next spins use a new one)."),
      h("button", { type: "button", onclick: async () => {
        await call("/v1/me/fairness/rotate", { method: "POST" });
        await renderProof(view, app, params);
      } }, "Rotate seed"));
    return;
  }
  if (!cryptoAvailable()) {
    verdict.replaceChildren(h("p", { role: "status" }, "This browser cannot check the proof here: WebCrypto needs a "
      + "secure origin (HTTPS or localhost). Download the proof and run `reward-wallet verify spin` on it."));
    return;
  }
  const check = await verifySpin(proof);
  verdict.replaceChildren(check.ok
    ? h("p", { role: "status", class: "ok" }, `Verified: the revealed server seed matches its commitment and lands `
        + `on segment ${check.segment}, the one you got.`)
    : h("p", { role: "alert", class: "alert" }, `Does not match: ${check.hashMatches ? "" : "the seed does not match "
        + "its commitment; "}the seed lands on segment ${check.segment}, the spin said ${check.expected}.`));
}
