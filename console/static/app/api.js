// The participant API, from the page: the access token lives in this module's memory only;
// the refresh token is an HttpOnly cookie the browser sends to /v1/auth/ and no script reads.

let access = null;
let refreshing = null;
// The access token is renewed shortly before it expires (it lives expires_in seconds), so
// no request goes out with a dead token and no 401 lands in the console. A phone that
// slept through the timer renews before its next request instead (refreshAt).
let refreshAt = Infinity;
let timer = null;

export class Offline extends Error {}

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

export function setAccess(token, expiresIn) {
  access = token;
  schedule(expiresIn);
}

// Renew at 80% of the lifetime, between 5 and 60 seconds early (840 s of the default 900).
export function renewalDelay(expiresIn) {
  const early = Math.max(5, Math.min(60, expiresIn * 0.2));
  return Math.max(1, expiresIn - early) * 1000;
}

function schedule(expiresIn) {
  clearTimeout(timer);
  timer = null;
  refreshAt = Infinity;
  if (access === null || !(expiresIn > 0)) return;
  const wait = renewalDelay(expiresIn);
  refreshAt = Date.now() + wait;
  timer = setTimeout(renewNow, wait);
}

async function renewNow() {
  try {
    if (!(await refresh())) window.dispatchEvent(new CustomEvent("rw-signed-out"));
  } catch (error) {
    // Offline: try again soon; a request made meanwhile renews first anyway.
    timer = setTimeout(renewNow, 10_000);
  }
}

async function fresh() {
  if (access !== null && Date.now() >= refreshAt) await refresh().catch(() => false);
}

export function signedIn() {
  return access !== null;
}

async function send(path, options) {
  try {
    return await fetch(path, { credentials: "same-origin", cache: "no-store", ...options });
  } catch (error) {
    throw new Offline("no connection");
  }
}

export async function postJson(path, body) {
  const response = await send(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(body) });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

// One refresh at a time: two screens asking at once share it. /v1/auth/resume answers 200
// either way, so opening the app signed out logs no failed request.
export function refresh() {
  if (!refreshing) {
    refreshing = postJson("/v1/auth/resume", {})
      .then((answer) => {
        access = answer.signed_in ? answer.access_token : null;
        schedule(answer.expires_in);
        return answer.signed_in;
      })
      .catch((error) => { if (error instanceof Offline) throw error; access = null; schedule(0); return false; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function signOut() {
  access = null;
  schedule(0);
  await postJson("/v1/auth/sign-out", {}).catch(() => null);
}

export async function call(path, { method = "GET", body, idempotencyKey } = {}) {
  await fresh();
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Authorization: `Bearer ${access}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    const response = await send(path, { method, headers,
                                        body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401 && attempt === 0 && (await refresh())) continue;
    if (response.status === 401) {
      access = null;
      window.dispatchEvent(new CustomEvent("rw-signed-out"));
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Problem(response.status, data);
    return data;
  }
}

// A file as the whole body (a receipt photo): the server reads its type from its bytes.
export async function upload(path, file) {
  await fresh();
  for (let attempt = 0; ; attempt += 1) {
    const response = await send(path, { method: "PUT", body: file, headers: {
      Authorization: `Bearer ${access}`, "Content-Type": file.type || "application/octet-stream" } });
    if (response.status === 401 && attempt === 0 && (await refresh())) continue;
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Problem(response.status, data);
    return data;
  }
}

// One key per user action: a double tap or a retry of the same action reuses it.
export function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
