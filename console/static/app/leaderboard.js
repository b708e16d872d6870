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

export async function render(view) {
  const boards = await call("/v1/leaderboards?limit=20");
  const board = boards.items.find((b) => b.status === "active") || boards.items[0];
  if (!board) {
    fill(view, h("h1", {}, "Leaderboard"), h("p", {}, "No leaderboard in this program yet."));
    return;
  }
  const standings = await call(`/v1/leaderboards/${encodeURIComponent(board.id)}?limit=10&around=me`);
  const me = standings.me;
  fill(view, 
    h("h1", {}, "Leaderboard"),
    h("p", {}, board.name),
    table("Top 10", standings.top, me && me.id),
    me ? h("p", {}, me.rank ? `You are number ${me.rank} with ${me.score}.` : "You are not ranked yet.") : null,
    standings.neighbours && standings.neighbours.length ? table("Around me", standings.neighbours, me && me.id) : null);
}
