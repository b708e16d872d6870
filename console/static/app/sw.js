// The app's service worker: it keeps the shell's files (never an API answer, never a card
// code or its barcode) and shows the offline screen instead of a browser error when a page
// cannot load. The server fills in @VERSION@ (the files' content hash, console/assets.py):
// a deploy changes these bytes, so the browser installs this worker anew, which caches the
// new shell under a new name and deletes the old one.
const VERSION = "@VERSION@";
const CACHE = `rw-app-shell-${VERSION}`;
const BASE = `/app/static/${VERSION}/`;
const SHELL = [
  "app.css", "main.js", "api.js", "dom.js", "fair.js", "home.js", "rewards.js", "barcode.js", "play.js",
  "activity.js", "leaderboard.js", "signin.js", "sweepstakes.js", "claims.js", "tax.js", "offline.html", "icon.svg",
].map((name) => BASE + name);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n.startsWith("rw-app-shell-") && n !== CACHE)
      .map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate" && url.pathname.startsWith("/app/")) {
    // Pages come from the network (the shell is small); offline, the offline screen.
    event.respondWith(fetch(event.request).catch(() => caches.match(BASE + "offline.html")));
    return;
  }
  if (url.pathname.startsWith(BASE)) {
    // A versioned file never changes: the cached copy, else the network.
    event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
  }
  // Everything else (the API, unversioned files) is not touched: never cached here.
});
