// The participant API, from the page: the access token lives in this module's memory only;
// the refresh token is an HttpOnly cookie the browser sends to /v1/auth/ and no script reads.

let access = null;
let refreshing = null;

export class Offline extends Error {}

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

export function setAccess(token) {
  access = token;
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
      .then((answer) => { access = answer.signed_in ? answer.access_token : null; return answer.signed_in; })
      .catch((error) => { if (error instanceof Offline) throw error; access = null; return false; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function signOut() {
  access = null;
  await postJson("/v1/auth/sign-out", {}).catch(() => null);
}

export async function call(path, { method = "GET", body, idempotencyKey } = {}) {
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

// One key per user action: a double tap or a retry of the same action reuses it.
export function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
