// The app's service worker: it keeps the shell's files (never an API answer, never a card
// code) and shows the offline screen instead of a browser error when a page cannot load.
const CACHE = "rw-app-shell-v1";
const SHELL = [
  "/app/static/app.css", "/app/static/main.js", "/app/static/api.js", "/app/static/dom.js",
  "/app/static/fair.js", "/app/static/home.js", "/app/static/rewards.js", "/app/static/play.js",
  "/app/static/activity.js", "/app/static/leaderboard.js", "/app/static/signin.js", "/app/static/sweepstakes.js",
  "/app/static/offline.html", "/app/static/icon.svg",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate" && url.pathname.startsWith("/app/")) {
    // Pages come from the network (the shell is small); offline, the offline screen.
    event.respondWith(fetch(event.request).catch(() => caches.match("/app/static/offline.html")));
    return;
  }
  if (url.pathname.startsWith("/app/static/")) {
    // The shell's own files: the network when it answers (so a new version shows), the
    // cached copy when it does not.
    event.respondWith(fetch(event.request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
      }
      return response;
    }).catch(() => caches.match(event.request)));
  }
  // Everything else (the API) is not touched: never cached.
});
