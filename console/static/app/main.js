// The app's start: sign in (from a link's fragment, the refresh cookie, or an email code),
// then draw the screen the hash names.
import { Offline, Problem, postJson, refresh, setAccess, signOut, signedIn } from "./api.js";
import { fill, h } from "./dom.js";
import * as activity from "./activity.js";
import * as claims from "./claims.js";
import * as tax from "./tax.js";
import * as home from "./home.js";
import * as leaderboard from "./leaderboard.js";
import * as play from "./play.js";
import * as rewards from "./rewards.js";
import * as signin from "./signin.js";

const body = document.body;
const app = { programId: body.dataset.programId, programName: body.dataset.programName,
              pointName: body.dataset.pointName };
const view = document.getElementById("view");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");

const ROUTES = [
  [/^\/home$/, home.render, "home"],
  [/^\/rewards$/, rewards.render, "rewards"],
  [/^\/play$/, play.render, "play"],
  [/^\/play\/(?<id>[^/]+)$/, play.renderWheel, "play"],
  [/^\/play\/(?<id>[^/]+)\/proof\/(?<spin>[^/]+)$/, play.renderProof, "play"],
  [/^\/activity$/, activity.render, "activity"],
  [/^\/leaderboard$/, leaderboard.render, "leaderboard"],
  [/^\/claims$/, claims.render, "home"],
  [/^\/tax$/, tax.render, "home"],
];

function offline() {
  fill(view, 
    h("h1", {}, "You are offline"),
    h("p", {}, "The app needs a connection to show your points and rewards. Nothing was lost."),
    h("button", { type: "button", class: "primary", onclick: () => show() }, "Try again"));
}

function showSignIn(message) {
  nav.hidden = true;
  signOutButton.hidden = true;
  document.title = `Sign in · ${app.programName}`;
  signin.render(view, app, message, () => {
    if (!location.hash || location.hash === "#") location.hash = "#/home";
    else show();
  });
}

async function show() {
  if (!signedIn()) {
    showSignIn();
    return;
  }
  nav.hidden = false;
  signOutButton.hidden = false;
  const [path, search] = (location.hash.slice(1) || "/home").split("?");
  const params = new URLSearchParams(search || "");
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    location.replace("#/home");
    return;
  }
  const [pattern, draw, screen] = route;
  const match = path.match(pattern);
  const decoded = Object.fromEntries(Object.entries(match.groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.screen === screen) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    await draw(view, app, decoded, params);
    const heading = view.querySelector("h1");
    document.title = `${heading ? heading.textContent : ""} · ${app.programName}`;
  } catch (error) {
    if (error instanceof Offline) offline();
    else if (!signedIn()) showSignIn("Your session ended: sign in again.");
    else fill(view, h("h1", {}, "Something went wrong"),
      h("p", { role: "alert", class: "alert" }, error instanceof Problem ? error.message : String(error)));
  }
  view.focus({ preventScroll: true });
}

async function spendLink() {
  // The token is in the fragment (never sent to a server, so a link preview spends nothing);
  // it leaves the address bar before anything else happens.
  const token = location.hash.slice(1);
  history.replaceState(null, "", `/app/${app.programId}#/home`);
  if (!token) return null;
  try {
    const pair = await postJson("/v1/auth/sign-in-link", { token });
    setAccess(pair.access_token, pair.expires_in);
    return null;
  } catch (error) {
    if (error instanceof Offline) throw error;
    return error instanceof Problem && error.status === 409
      ? error.message
      : "This sign-in link is used up or expired. Ask for a new one, or sign in with a code.";
  }
}

async function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  }
  signOutButton.addEventListener("click", async () => {
    await signOut();
    showSignIn();
  });
  window.addEventListener("hashchange", () => show());
  window.addEventListener("rw-signed-out", () => showSignIn("Your session ended: sign in again."));
  try {
    let message = null;
    if (location.pathname.endsWith("/sign-in")) message = await spendLink();
    if (!signedIn()) await refresh();
    if (!signedIn()) {
      showSignIn(message);
      return;
    }
    await show();
  } catch (error) {
    if (error instanceof Offline) offline();
    else throw error;
  }
}

start();
