// The rw-fair-1 verifier (FAIRNESS.md), in the browser with WebCrypto: the same stream,
// the same rejection sampling and the same segment choice as the server and the
// `reward-wallet verify spin` command.

const encoder = new TextEncoder();
const TWO_32 = 2n ** 32n;

export function available() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

// stream(key, prefix) = HMAC(key, prefix:0) || HMAC(key, prefix:1) || ..., read 4 bytes at a time.
export class Stream {
  constructor(key, prefix) {
    this.keyText = key;
    this.prefix = prefix;
    this.block = 0;
    this.bytes = new Uint8Array(0);
    this.at = 0;
  }

  async take(count) {
    if (!this.key) {
      this.key = await crypto.subtle.importKey("raw", encoder.encode(this.keyText),
        { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    }
    while (this.bytes.length - this.at < count) {
      const next = new Uint8Array(await crypto.subtle.sign("HMAC", this.key,
        encoder.encode(`${this.prefix}:${this.block}`)));
      this.block += 1;
      const joined = new Uint8Array(this.bytes.length - this.at + next.length);
      joined.set(this.bytes.subarray(this.at));
      joined.set(next, this.bytes.length - this.at);
      this.bytes = joined;
      this.at = 0;
    }
    const out = this.bytes.subarray(this.at, this.at + count);
    this.at += count;
    return out;
  }

  async float() {
    const b = await this.take(4);
    return b[0] / 256 + b[1] / 256 ** 2 + b[2] / 256 ** 3 + b[3] / 256 ** 4;
  }

  async word() {
    const b = await this.take(4);
    return BigInt(((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3]);
  }

  // A uniform integer in [0, n), 1 <= n <= 2^32, by Lemire's rejection: no bias at all.
  async below(n) {
    const size = BigInt(n);
    const threshold = TWO_32 % size;
    for (;;) {
      const m = (await this.word()) * size;
      if (m % TWO_32 >= threshold) return Number(m >> 32n);
    }
  }
}

export async function floats(serverSeed, clientSeed, nonce, count) {
  const stream = new Stream(serverSeed, `${clientSeed}:${nonce}`);
  const out = [];
  for (let i = 0; i < count; i += 1) out.push(await stream.float());
  return out;
}

export async function segmentOf(serverSeed, clientSeed, nonce, weights) {
  const total = weights.reduce((sum, w) => sum + Number(w), 0);
  const r = await new Stream(serverSeed, `${clientSeed}:${nonce}`).below(total);
  let cumulative = 0;
  for (let i = 0; i < weights.length; i += 1) {
    cumulative += Number(weights[i]);
    if (cumulative > r) return i;
  }
  return weights.length - 1;
}

// Checks a revealed spin proof: the seed matches its commitment, and the stream lands on
// the segment the server paid. Answers {ok, hashMatches, segment, expected}.
export async function verifySpin(proof) {
  const hashMatches = (await sha256Hex(proof.server_seed)) === proof.server_seed_hash;
  const segment = await segmentOf(proof.server_seed, proof.client_seed, proof.nonce, proof.weights);
  return { ok: hashMatches && segment === proof.segment_index, hashMatches, segment,
           expected: proof.segment_index };
}
