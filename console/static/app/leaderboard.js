import { call } from "./api.js";
import { fill, h } from "./dom.js";

function table(caption, entries, meId) {
  return h("table", { class: "standings" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Rank"), h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col" }, "Score"))),
    h("tbody", {}, entries.map((e) => h("tr", { class: e.id && e.id === meId ? "me" : "" },
      h("td", {}, e.rank ?? "–"), h("td", {}, e.display_name), h("td", {}, String(e.score))))));
}

// "Hide my name": others then see me as an anonymous salesperson (PATCH /v1/me/preferences).
function privacy(me, again) {
  const box = h("input", { id: "hide-name", type: "checkbox", checked: !me.show_name, onchange: async () => {
    box.disabled = true;
    await call("/v1/me/preferences", { method: "PATCH", body: { show_name: !box.checked } });
    await again();
  } });
  return h("p", { class: "check" }, box, h("label", { for: "hide-name" }, "Hide my name from others"));
}

export async function render(view) {
  const again = () => render(view);
  const [boards, me] = await Promise.all([call("/v1/leaderboards?limit=20"), call("/v1/me")]);
  const board = boards.items.find((b) => b.status === "active") || boards.items[0];
  if (!board) {
    fill(view, h("h1", {}, "Leaderboard"), h("p", {}, "No leaderboard in this program yet."), privacy(me, again));
    return;
  }
  const standings = await call(`/v1/leaderboards/${encodeURIComponent(board.id)}?limit=10&around=me`);
  const mine = standings.me;
  fill(view, 
    h("h1", {}, "Leaderboard"),
    h("p", {}, board.name),
    table("Top 10", standings.top, mine && mine.id),
    mine ? h("p", {}, mine.rank ? `You are number ${mine.rank} with ${mine.score}.` : "You are not ranked yet.") : null,
    standings.neighbours && standings.neighbours.length ? table("Around me", standings.neighbours, mine && mine.id) : null,
    privacy(me, again));
}
