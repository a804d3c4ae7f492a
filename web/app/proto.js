// Lifeline's wire formats for the page: envelopes (docs/PROTOCOL.md,
// "Envelope, version 1"), channel ids, TTL codes, direct messages, team
// channels, receipts, profiles, key changes, and the key backup text. It is the browser's
// twin of the Go package message and must stay byte for byte identical to it:
// web/app/proto_vectors.mjs checks both against message/testdata/vectors.json,
// and `go test ./message` runs that check.
//
// Bytes are Uint8Array; times are unix milliseconds (numbers). Errors are
// ProtoError, whose code names the Go sentinel error of the same case:
// version, truncated, too_large, malformed, signature, future, expired,
// not_for_me, decrypt, bad_key.
//
// Written for the page's oldest browsers (Chrome 67, Safari 14, Firefox 68):
// no ?. or ??, no class fields, no built-ins newer than those.
import {
  ed25519, x25519, sha256, sha512, hkdf, chacha20poly1305, xchacha20poly1305,
} from './vendor/noble.js';

// Kinds and priorities as on the wire (flags bits 0-3 and 4-5).
export const Kind = Object.freeze({ text: 1, team: 2, direct: 3, receipt: 4, alert: 5, report: 6, profile: 7, keyChange: 8 });
export const Priority = Object.freeze({ low: 0, normal: 1, high: 2, alert: 3 });

export const VERSION = 1;
export const MAX_BODY = 4096;
export const MAX_ENVELOPE = 9 + 32 + 32 + MAX_BODY + 64;
export const MAX_RECEIPT_IDS = 16;
export const MAX_CLOCK_SKEW_MS = 3600 * 1000;
export const DEFAULT_TTL_MS = 30 * 24 * 3600 * 1000;
export const MAX_CHANNEL_NAME = 64;
export const MAX_PROFILE_NAME = 64;
export const MAX_PROFILE_STATUS = 140;
export const PROFILES_CHANNEL = 'lifeline/profiles';
export const REPORTS_CHANNEL = 'lifeline/reports';
export const KEYS_CHANNEL = 'lifeline/keys';

const SIGNATURE_PREFIX = 'lifeline/envelope/v1\0';
const DIRECT_INFO = 'lifeline/direct/v1';
const TEAM_LABEL = 'lifeline/team/v1';
const KEY_CHANGE_LABEL = 'lifeline/key-change/v1\0';
const SEAL_OVERHEAD = 32 + 16; // ephemeral key, Poly1305 tag
const TEAM_OVERHEAD = 24 + 16; // nonce, Poly1305 tag
const FLAG_TTL = 0x40;
const FLAG_RESERVED = 0x80;
const MAX_CREATED = 2 ** 48 - 1;

/** ProtoError is every error this module throws on bad input. */
export class ProtoError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ProtoError';
    this.code = code;
  }
}
const fail = (code, message) => { throw new ProtoError(code, message); };

// ---- bytes ----------------------------------------------------------------

const enc = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, as Go's strings do.
const strictUTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** utf8 encodes a string (lone surrogates become U+FFFD, as in Go). */
export const utf8 = (s) => enc.encode(s);

/** text decodes UTF-8, throwing a malformed error on invalid bytes. */
export function text(bytes) {
  try { return strictUTF8.decode(bytes); } catch (e) { return fail('malformed', 'text is not UTF-8'); }
}

const isUTF8 = (bytes) => { try { strictUTF8.decode(bytes); return true; } catch (e) { return false; } };

// toWellFormed replaces lone surrogates with U+FFFD, as UTF-8 encoding and
// Go's JSON decoder do (String.prototype.toWellFormed is too new).
function toWellFormed(s) {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      out += s[i] + s[i + 1];
      i++;
    } else {
      out += (c & 0xf800) === 0xd800 ? '\ufffd' : s[i];
    }
  }
  return out;
}

// wellFormed reports whether a string is valid UTF-8 once encoded.
const wellFormed = (s) => toWellFormed(s) === s;

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function toHex(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}

/** fromHex parses hex digits (either case); n, if given, is the byte length required. */
export function fromHex(s, n) {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) fail('malformed', 'not hex');
  if (n !== undefined && s.length !== 2 * n) fail('malformed', 'want ' + 2 * n + ' hex digits, got ' + s.length);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

/** toBase64url encodes without padding (RFC 4648 section 5). */
export function toBase64url(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** fromBase64url decodes base64url, with or without padding. */
export function fromBase64url(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    fail('malformed', 'not base64url');
  }
  const bin = atob(s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const u8 = (v, n, what) => {
  if (!(v instanceof Uint8Array) || (n !== undefined && v.length !== n)) {
    fail('malformed', what + ' must be ' + (n === undefined ? '' : n + ' bytes in ') + 'a Uint8Array');
  }
  return v;
};

// ---- text rules shared with Go ----------------------------------------------

// Go's unicode.IsSpace, which strings.TrimSpace uses. JavaScript's trim()
// differs: it strips U+FEFF and keeps U+0085.
const GO_SPACE = '\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000';
const goTrimRE = new RegExp('^[' + GO_SPACE + ']+|[' + GO_SPACE + ']+$', 'g');
const goTrimSpace = (s) => s.replace(goTrimRE, '');

// goToLower is Go's strings.ToLower: simple case mapping, one code point at
// a time. Lower-casing each code point alone avoids JavaScript's
// context-sensitive final sigma; U+0130 is the one letter whose full lower
// case (i + U+0307) differs from its simple one.
function goToLower(s) {
  let out = '';
  for (const ch of s) out += ch === '\u0130' ? 'i' : ch.toLowerCase();
  return out;
}

const hasControl = (s) => /[\u0000-\u001f\u007f]/.test(s);

/** normaliseChannelName is Go's NormaliseChannelName. */
export function normaliseChannelName(name) {
  if (typeof name !== 'string') fail('malformed', 'channel name must be a string');
  let n = goTrimSpace(name);
  if (n[0] === '#') n = n.slice(1);
  n = goToLower(n);
  if (n === '') fail('malformed', 'channel name is empty');
  if (!wellFormed(n)) fail('malformed', 'channel name is not UTF-8');
  const len = utf8(n).length;
  if (len > MAX_CHANNEL_NAME) fail('malformed', 'channel name is ' + len + ' bytes, the limit is ' + MAX_CHANNEL_NAME);
  if (hasControl(n)) fail('malformed', 'channel name contains a control character');
  return n;
}

/** channelId is SHA-256("lifeline/channel/v1\0" || normalised name)[0:8]. */
export function channelId(name) {
  return sha256(utf8('lifeline/channel/v1\0' + normaliseChannelName(name))).slice(0, 8);
}

// ---- TTL codes ----------------------------------------------------------------

/** ttlFromCode is the lifetime, in ms, of a TTL code: ((16+m)<<e) - 16 minutes. */
export function ttlFromCode(code) {
  const e = code >> 4;
  const m = code & 15;
  return (((16 + m) << e) - 16) * 60000;
}

export const MAX_TTL_MS = ttlFromCode(0xff);

/** ttlCode is the smallest code whose lifetime is at least ms (Go's TTLCode). */
export function ttlCode(ms) {
  if (!(ms > 0)) return 0;
  for (let c = 0; c <= 0xff; c++) if (ttlFromCode(c) >= ms) return c;
  return fail('malformed', 'TTL ' + ms + ' ms is over the maximum ' + MAX_TTL_MS + ' ms');
}

// ---- identities ---------------------------------------------------------------

/** identityFromSeed wraps a 32-byte Ed25519 seed (RFC 8032 private key). */
export function identityFromSeed(seed) {
  u8(seed, 32, 'seed');
  const s = seed.slice();
  return Object.freeze({ seed: s, publicKey: ed25519.getPublicKey(s) });
}

/** random returns n bytes from the browser's CSPRNG: the default rand. */
export function random(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

export const newIdentity = () => identityFromSeed(random(32));

const draw = (rand, n) => {
  const b = (rand || random)(n);
  if (!(b instanceof Uint8Array) || b.length !== n) fail('malformed', 'rand(' + n + ') did not return ' + n + ' bytes');
  return b;
};

// ---- envelopes ------------------------------------------------------------------

const KNOWN = [0, 1, 1, 1, 1, 1, 1, 1, 1];
const known = (k) => k >= 0 && k < KNOWN.length && KNOWN[k] === 1;
/** toChannel reports whether a kind's destination is an 8-byte channel id. */
export const toChannel = (k) => k === 1 || k === 2 || k === 5 || k === 6 || k === 7 || k === 8;

// checkBody is Go's checkBody: the per-kind rules shared by decode and sign.
function checkBody(kind, priority, body) {
  if (body.length > MAX_BODY) fail('too_large', 'body is ' + body.length + ' bytes, the limit is ' + MAX_BODY);
  switch (kind) {
    case Kind.text:
    case Kind.alert:
      if (body.length === 0) fail('malformed', 'empty text');
      if (!isUTF8(body)) fail('malformed', 'text is not UTF-8');
      if (kind === Kind.alert && priority !== Priority.alert) fail('malformed', 'alert with priority ' + priority + ', must be 3 (alert)');
      break;
    case Kind.direct:
      if (body.length < SEAL_OVERHEAD) fail('malformed', 'sealed body is ' + body.length + ' bytes, at least ' + SEAL_OVERHEAD + ' expected');
      break;
    case Kind.team:
      if (body.length < TEAM_OVERHEAD + 1) fail('malformed', 'sealed team body is ' + body.length + ' bytes, at least ' + (TEAM_OVERHEAD + 1) + ' expected');
      if (priority !== Priority.normal && priority !== Priority.alert) fail('malformed', 'team message with priority ' + priority + ' (normal or alert)');
      break;
    case Kind.profile:
      if (priority !== Priority.low) fail('malformed', 'profile with priority ' + priority + ' (low)');
      parseProfileBody(body);
      break;
    case Kind.keyChange:
      checkKeyChangeBody(priority, body);
      break;
    case Kind.report:
      if (body.length === 0 || body[0] !== 0x7b || !validJSON(body)) fail('malformed', 'report body is not a JSON object');
      break;
    case Kind.receipt:
      if (body.length === 0 || body.length % 32 !== 0 || body.length / 32 > MAX_RECEIPT_IDS) {
        fail('malformed', 'receipt body must hold 1 to ' + MAX_RECEIPT_IDS + ' IDs, has ' + body.length + ' bytes');
      }
      break;
  }
}

// validJSON is Go's json.Valid for a body, which lets invalid UTF-8 through
// inside strings: so decode with replacement, not strictly.
function validJSON(body) {
  try { JSON.parse(new TextDecoder().decode(body)); return true; } catch (e) { return false; }
}

/**
 * decode parses envelope bytes and checks their structure like Go's Decode:
 * version, size (before anything else is read), flags, kind and the kind's
 * body rules. It checks neither the signature nor the time (verify does).
 * Returns {kind, priority, created, ttlMs, hasTTL, expires, channel |
 * recipient, author, body, id (hex), raw}; the byte fields are copies.
 */
export function decode(bytes) {
  u8(bytes, undefined, 'envelope');
  const b = bytes;
  if (b.length === 0) fail('truncated', 'envelope truncated: empty');
  if (b[0] !== VERSION) fail('version', 'unknown envelope version 0x' + toHex([b[0]]));
  if (b.length > MAX_ENVELOPE) fail('too_large', 'envelope too large: ' + b.length + ' bytes, the limit is ' + MAX_ENVELOPE);
  if (b.length < 8) fail('truncated', 'envelope truncated: ' + b.length + ' bytes, the header needs 8');
  const flags = b[1];
  if (flags & FLAG_RESERVED) fail('malformed', 'malformed envelope: reserved flag bit set');
  const kind = flags & 0x0f;
  const priority = (flags & 0x30) >> 4;
  if (!known(kind)) fail('malformed', 'malformed envelope: unknown kind ' + kind);
  const created = b[2] * 2 ** 40 + b[3] * 2 ** 32 + ((b[4] << 24) >>> 0) + (b[5] << 16) + (b[6] << 8) + b[7];
  let off = 8;
  let ttlMs = DEFAULT_TTL_MS;
  let hasTTL = false;
  if (flags & FLAG_TTL) {
    if (b.length < off + 1) fail('truncated', 'envelope truncated: missing TTL byte');
    ttlMs = ttlFromCode(b[off]);
    hasTTL = true;
    off++;
  }
  const channel = toChannel(kind);
  const destLen = channel ? 8 : 32;
  const need = off + destLen + 32 + 64;
  if (b.length < need) fail('truncated', 'envelope truncated: ' + b.length + ' bytes, a kind ' + kind + ' envelope needs at least ' + need);
  const raw = b.slice();
  const e = { kind, priority, created, ttlMs, hasTTL, expires: created + ttlMs };
  if (channel) e.channel = raw.slice(off, off + 8);
  else e.recipient = raw.slice(off, off + 32);
  off += destLen;
  e.author = raw.slice(off, off + 32);
  off += 32;
  e.body = raw.slice(off, raw.length - 64);
  checkBody(kind, priority, e.body);
  e.id = toHex(sha256(raw));
  e.raw = raw;
  return e;
}

// The group order of Ed25519.
const L = BigInt('7237005577332262213973186563042994240857116359379907606001950938285454250989');
const leNumber = (bytes) => BigInt('0x0' + toHex(bytes.slice().reverse()));

/**
 * verifySignature is Ed25519 verification exactly as Go's crypto/ed25519
 * does it, so the page accepts what the node accepts: the public key may be
 * any encoding of a curve point (non-canonical or small order included), S
 * must be below L, and [S]B - [k]A must encode to the signature's R byte for
 * byte (the cofactorless equation). noble's own verify differs at the edges:
 * its strict mode refuses small-order keys and non-canonical encodings, and
 * both its modes use the cofactored equation, which accepts signatures by
 * mixed-order keys that Go refuses (vectors.json "signatures" pins each
 * case). Only noble's audited point arithmetic is used here.
 */
export function verifySignature(sig, msg, pub) {
  let A;
  try { A = ed25519.Point.fromBytes(pub, true); } catch (e) { return false; }
  const s = leNumber(sig.subarray(32, 64));
  if (s >= L) return false;
  const R = sig.subarray(0, 32);
  const k = leNumber(sha512(concat(R, pub, msg))) % L;
  const check = ed25519.Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
  return equal(check.toBytes(), R);
}

/**
 * verify decodes bytes, checks the author's signature over
 * "lifeline/envelope/v1\0" || bytes[0:len-64], and checks the time against
 * nowMs: created at most MAX_CLOCK_SKEW_MS ahead, not expired. What every
 * node runs before storing an envelope.
 */
export function verify(bytes, nowMs) {
  const e = decode(bytes);
  const n = e.raw.length - 64;
  if (!verifySignature(e.raw.subarray(n), concat(utf8(SIGNATURE_PREFIX), e.raw.subarray(0, n)), e.author)) {
    fail('signature', 'bad signature: author ' + toHex(e.author));
  }
  checkTime(e, nowMs);
  return e;
}

/** checkTime throws future or expired for a decoded envelope against nowMs. */
export function checkTime(e, nowMs) {
  if (e.created > nowMs + MAX_CLOCK_SKEW_MS) {
    fail('future', 'created in the future: ' + new Date(e.created).toISOString() + ', ' + (e.created - nowMs) + ' ms ahead of this clock');
  }
  if (e.expires <= nowMs) fail('expired', 'expired at ' + new Date(e.expires).toISOString());
}

/**
 * sign encodes and signs a draft as identity, like Go's Identity.Sign, and
 * returns the envelope's bytes. draft: {kind, priority, created (ms),
 * ttlMs (optional; 0 or absent: the default 30 days, no TTL byte),
 * channel (8 bytes) or recipient (32 bytes), body}.
 */
export function sign(identity, draft) {
  const kind = draft.kind;
  const priority = draft.priority;
  const created = draft.created;
  if (!known(kind)) fail('malformed', 'unknown kind ' + kind);
  if (!(priority >= 0 && priority <= 3 && Math.floor(priority) === priority)) fail('malformed', 'priority ' + priority);
  if (!Number.isSafeInteger(created) || created < 0 || created > MAX_CREATED) fail('malformed', 'created ' + created + ' out of range');
  const body = u8(draft.body, undefined, 'body');
  checkBody(kind, priority, body);
  const ttlMs = draft.ttlMs || 0;
  if (ttlMs < 0 || ttlMs > MAX_TTL_MS) fail('malformed', 'TTL ' + ttlMs + ' ms outside 1 minute..' + MAX_TTL_MS + ' ms');
  const dest = toChannel(kind) ? u8(draft.channel, 8, 'channel') : u8(draft.recipient, 32, 'recipient');
  const head = new Uint8Array(ttlMs ? 9 : 8);
  head[0] = VERSION;
  head[1] = kind | (priority << 4) | (ttlMs ? FLAG_TTL : 0);
  const hi = Math.floor(created / 2 ** 32);
  const lo = created % 2 ** 32;
  head[2] = hi >>> 8; head[3] = hi & 0xff;
  head[4] = lo >>> 24; head[5] = (lo >>> 16) & 0xff; head[6] = (lo >>> 8) & 0xff; head[7] = lo & 0xff;
  if (ttlMs) head[8] = ttlCode(ttlMs);
  const unsigned = concat(head, dest, identity.publicKey, body);
  return concat(unsigned, ed25519.sign(concat(utf8(SIGNATURE_PREFIX), unsigned), identity.seed));
}

const asEnvelope = (e) => (e instanceof Uint8Array ? decode(e) : e);

// ---- direct messages (kind 3) -------------------------------------------------

// montgomery is Go's montgomery: the recipient's Ed25519 key as an X25519
// public key. Like Go it takes any encoding of a curve point and refuses
// non-points and points of small order.
function montgomery(pub) {
  let P;
  try { P = ed25519.Point.fromBytes(u8(pub, 32, 'recipient'), true); } catch (e) {
    return fail('bad_key', 'invalid public key: ' + toHex(pub));
  }
  if (P.isSmallOrder()) fail('bad_key', 'invalid public key: small order point ' + toHex(pub));
  return ed25519.utils.toMontgomery(P.toBytes());
}

function directKey(secret, ephemeral, author, recipient) {
  return hkdf(sha256, secret, ephemeral, concat(utf8(DIRECT_INFO), author, recipient), 32);
}

/**
 * sealDirect encrypts plaintext for recipientPub as written by identity and
 * returns the body of a direct envelope: ephemeral X25519 public key (32) ||
 * ChaCha20-Poly1305 (zero nonce; the key is used once). rand(n), optional,
 * supplies the ephemeral secret (tests); the default is the CSPRNG.
 */
export function sealDirect(identity, recipientPub, plaintext, rand) {
  const R = montgomery(recipientPub);
  u8(plaintext, undefined, 'plaintext');
  const eph = draw(rand, 32);
  const E = x25519.getPublicKey(eph);
  let secret;
  try { secret = x25519.getSharedSecret(eph, R); } catch (e) { return fail('bad_key', 'invalid public key: ' + e.message); }
  const key = directKey(secret, E, identity.publicKey, recipientPub);
  return concat(E, chacha20poly1305(key, new Uint8Array(12)).encrypt(plaintext));
}

/** openDirect decrypts a direct envelope (bytes or decoded) addressed to identity. */
export function openDirect(identity, envelope) {
  const e = asEnvelope(envelope);
  if (e.kind !== Kind.direct) fail('malformed', 'kind ' + e.kind + ' is not a direct message');
  if (!equal(e.recipient, identity.publicKey)) fail('not_for_me', 'not addressed to this identity: addressed to ' + toHex(e.recipient));
  const E = e.body.subarray(0, 32);
  let secret;
  try { secret = x25519.getSharedSecret(ed25519.utils.toMontgomerySecret(identity.seed), E); } catch (err) {
    return fail('decrypt', 'cannot decrypt: ' + err.message);
  }
  const key = directKey(secret, E, e.author, identity.publicKey);
  try {
    return chacha20poly1305(key, new Uint8Array(12)).decrypt(e.body.subarray(32));
  } catch (err) {
    return fail('decrypt', 'cannot decrypt: ' + err.message);
  }
}

// ---- team channels (kind 2) ------------------------------------------------------

/** team derives a team channel's {id (8 bytes), key (32)} from its 32-byte secret. */
export function team(secret) {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) {
    fail('bad_key', 'team secret must be 32 bytes');
  }
  const none = new Uint8Array(0);
  return Object.freeze({
    id: hkdf(sha256, secret, none, utf8(TEAM_LABEL + '/id'), 8),
    key: hkdf(sha256, secret, none, utf8(TEAM_LABEL + '/key'), 32),
  });
}

const teamAAD = (id, author) => concat(utf8(TEAM_LABEL), id, author);

/**
 * sealTeam encrypts non-empty UTF-8 plaintext for team t as written by
 * identity and returns the body of a team envelope: nonce (24) ||
 * XChaCha20-Poly1305 with aad "lifeline/team/v1" || team id || author.
 * rand(n), optional, supplies the nonce.
 */
export function sealTeam(identity, t, plaintext, rand) {
  u8(plaintext, undefined, 'plaintext');
  if (plaintext.length === 0 || !isUTF8(plaintext)) fail('malformed', 'team message text must be non-empty UTF-8');
  if (plaintext.length + TEAM_OVERHEAD > MAX_BODY) {
    fail('too_large', 'text is ' + plaintext.length + ' bytes, the limit is ' + (MAX_BODY - TEAM_OVERHEAD));
  }
  const nonce = draw(rand, 24);
  return concat(nonce, xchacha20poly1305(t.key, nonce, teamAAD(t.id, identity.publicKey)).encrypt(plaintext));
}

/** openTeam decrypts a team envelope (bytes or decoded) of team t. */
export function openTeam(t, envelope) {
  const e = asEnvelope(envelope);
  if (e.kind !== Kind.team) fail('malformed', 'kind ' + e.kind + ' is not a team message');
  if (!equal(e.channel, t.id)) fail('not_for_me', 'team channel ' + toHex(e.channel) + ', not ' + toHex(t.id));
  let pt;
  try {
    pt = xchacha20poly1305(t.key, e.body.subarray(0, 24), teamAAD(t.id, e.author)).decrypt(e.body.subarray(24));
  } catch (err) {
    return fail('decrypt', 'cannot decrypt: ' + err.message);
  }
  if (pt.length === 0 || !isUTF8(pt)) fail('malformed', 'team message text is not UTF-8');
  return pt;
}

// ---- receipts (kind 4) --------------------------------------------------------------

/** receiptBody joins 1..16 message ids (32 bytes each, or hex). */
export function receiptBody(ids) {
  return concat(...ids.map((id) => (typeof id === 'string' ? fromHex(id, 32) : u8(id, 32, 'message id'))));
}

/** receiptIds lists, as hex, the ids a receipt (bytes or decoded) acknowledges. */
export function receiptIds(envelope) {
  const e = asEnvelope(envelope);
  if (e.kind !== Kind.receipt) return [];
  const out = [];
  for (let i = 0; i < e.body.length; i += 32) out.push(toHex(e.body.subarray(i, i + 32)));
  return out;
}

// ---- profiles (kind 7) ----------------------------------------------------------------

function checkLine(what, s, max) {
  if (!wellFormed(s)) fail('malformed', what + ' is not UTF-8');
  const len = utf8(s).length;
  if (len > max) fail('malformed', what + ' is ' + len + ' bytes, the limit is ' + max);
  if (hasControl(s)) fail('malformed', what + ' contains a control character');
}

function checkProfile(name, status) {
  if (name === '' || goTrimSpace(name) !== name) fail('malformed', 'profile name is empty or has surrounding spaces');
  checkLine('profile name', name, MAX_PROFILE_NAME);
  checkLine('profile status', status, MAX_PROFILE_STATUS);
}

// goJSONString is Go's json.Marshal of a valid string: JSON.stringify plus
// the escapes Go adds for <, >, & and the two JavaScript line terminators.
const goJSONString = (s) => JSON.stringify(s).replace(/[<>&\u2028\u2029]/g,
  (c) => '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4));

/**
 * profileBody is the body of a profile envelope for {name, status}, the
 * bytes Go's NewProfile writes: {"name":...,"status":...}, status left out
 * when empty. Name: 1..64 bytes, no surrounding spaces; status: 0..140
 * bytes; neither with control characters.
 */
export function profileBody(p) {
  const name = p.name;
  const status = p.status === undefined ? '' : p.status;
  if (typeof name !== 'string' || typeof status !== 'string') fail('malformed', 'profile name and status must be strings');
  checkProfile(name, status);
  let json = '{"name":' + goJSONString(name);
  if (status !== '') json += ',"status":' + goJSONString(status);
  return utf8(json + '}');
}

// parseProfileBody reads a profile body as Go's parseProfileBody does:
// exact keys "name" and "status" (a repeated key: the last wins, in both
// languages), each absent or a JSON string, unknown keys ignored.
function parseProfileBody(body) {
  if (body.length === 0 || body[0] !== 0x7b) fail('malformed', 'profile body is not a JSON object');
  if (!isUTF8(body)) fail('malformed', 'profile body is not UTF-8');
  let o;
  try { o = JSON.parse(strictUTF8.decode(body)); } catch (e) { return fail('malformed', 'profile body: ' + e.message); }
  const p = { name: '', status: '' };
  for (const f of ['name', 'status']) {
    if (!Object.prototype.hasOwnProperty.call(o, f)) continue;
    if (typeof o[f] !== 'string') fail('malformed', 'profile body: ' + f + ' is not a string');
    // Go decodes an escaped lone surrogate as U+FFFD.
    p[f] = toWellFormed(o[f]);
  }
  checkProfile(p.name, p.status);
  return p;
}

/** parseProfile reads a profile envelope (bytes or decoded): {name, status}. */
export function parseProfile(envelope) {
  const e = asEnvelope(envelope);
  if (e.kind !== Kind.profile) fail('malformed', 'kind ' + e.kind + ' is not a profile');
  return parseProfileBody(e.body);
}

/** newerProfile reports whether profile envelope a supersedes b: later created, or equal and a greater id. */
export function newerProfile(a, b) {
  if (a.created !== b.created) return a.created > b.created;
  return a.id > b.id; // lower-case hex of equal length orders as the bytes do
}

// ---- key changes (kind 8) -------------------------------------------------------------

// A key change says the old key is replaced by the new: body = version (1)
// || old (32) || new (32) [|| the old key's signature (64) over
// "lifeline/key-change/v1\0" || old || new]. Signed by both: the envelope
// is the new key's and the old signature is there. Vouched: no old
// signature, and the envelope is a third key's (see Go's keychange.go).

const KC_VOUCHED = 65;
const KC_SIGNED = 129;

function checkKeyChangeBody(priority, body) {
  if (priority !== Priority.normal) fail('malformed', 'key change with priority ' + priority + ' (normal)');
  if (body.length !== KC_VOUCHED && body.length !== KC_SIGNED) {
    fail('malformed', 'key change body is ' + body.length + ' bytes, want ' + KC_VOUCHED + ' or ' + KC_SIGNED);
  }
  if (body[0] !== 1) fail('malformed', 'key change version ' + body[0]);
  if (equal(body.subarray(1, 33), body.subarray(33, 65))) fail('malformed', 'key change from a key to itself');
}

/** keyChangeStatement is what the old key signs. */
export const keyChangeStatement = (oldKey, newKey) => concat(utf8(KEY_CHANGE_LABEL), oldKey, newKey);

/** newKeyChange signs, as the new key id, that it replaces oldId's key; oldId signs the statement. */
export function newKeyChange(id, oldId, created, ttlMs) {
  const st = keyChangeStatement(oldId.publicKey, id.publicKey);
  const body = concat(new Uint8Array([1]), oldId.publicKey, id.publicKey, ed25519.sign(st, oldId.seed));
  return sign(id, { kind: Kind.keyChange, priority: Priority.normal, created, ttlMs, channel: channelId(KEYS_CHANNEL), body });
}

/** vouchKeyChange signs, as a third key id, that newKey replaces oldKey. */
export function vouchKeyChange(id, oldKey, newKey, created, ttlMs) {
  if (equal(id.publicKey, u8(oldKey, 32, 'old key')) || equal(id.publicKey, u8(newKey, 32, 'new key'))) {
    fail('malformed', 'a key cannot vouch for its own change');
  }
  montgomery(newKey);
  const body = concat(new Uint8Array([1]), oldKey, newKey);
  return sign(id, { kind: Kind.keyChange, priority: Priority.normal, created, ttlMs, channel: channelId(KEYS_CHANNEL), body });
}

/**
 * parseKeyChange reads a key change (bytes or decoded) like Go's
 * ParseKeyChange: {old, new (32 bytes each), voucher (the author's key
 * for a vouched change, else null)}. Signed by both: the author must be
 * the new key (malformed) and the old key's signature must verify
 * (signature); vouched: the author must be neither key (malformed). The
 * new key must be one that can be written to (bad_key). The envelope's own
 * signature is verify's business.
 */
export function parseKeyChange(envelope) {
  const e = asEnvelope(envelope);
  if (e.kind !== Kind.keyChange) fail('malformed', 'kind ' + e.kind + ' is not a key change');
  checkKeyChangeBody(e.priority, e.body);
  const kc = { old: e.body.slice(1, 33), new: e.body.slice(33, 65), voucher: null };
  montgomery(kc.new);
  if (e.body.length === KC_VOUCHED) {
    if (equal(e.author, kc.old) || equal(e.author, kc.new)) fail('malformed', 'a vouched key change signed by the key it is about');
    kc.voucher = e.author.slice();
    return kc;
  }
  if (!equal(e.author, kc.new)) fail('malformed', 'a key change signed by both must be authored by the new key');
  if (!verifySignature(e.body.subarray(65), keyChangeStatement(kc.old, kc.new), kc.old)) {
    fail('signature', 'the old key ' + toHex(kc.old) + ' did not sign this key change');
  }
  return kc;
}

// ---- composing, as Go's compose.go does ---------------------------------------------

export const newText = (id, channelName, s, created, ttlMs) =>
  sign(id, { kind: Kind.text, priority: Priority.normal, created, ttlMs, channel: channelId(channelName), body: utf8(s) });

export const newAlert = (id, channelName, s, created, ttlMs) =>
  sign(id, { kind: Kind.alert, priority: Priority.alert, created, ttlMs, channel: channelId(channelName), body: utf8(s) });

export function newDirect(id, to, s, priority, created, ttlMs, rand) {
  if (s === '' || !wellFormed(s)) fail('malformed', 'direct message text must be non-empty UTF-8');
  const pt = utf8(s);
  if (pt.length + SEAL_OVERHEAD > MAX_BODY) fail('too_large', 'text is ' + pt.length + ' bytes, the limit is ' + (MAX_BODY - SEAL_OVERHEAD));
  return sign(id, { kind: Kind.direct, priority, created, ttlMs, recipient: to, body: sealDirect(id, to, pt, rand) });
}

export const newReceipt = (id, author, ids, created) =>
  sign(id, { kind: Kind.receipt, priority: Priority.low, created, recipient: author, body: receiptBody(ids) });

export const newTeamText = (id, t, s, priority, created, ttlMs, rand) =>
  sign(id, { kind: Kind.team, priority, created, ttlMs, channel: t.id, body: sealTeam(id, t, utf8(s), rand) });

export const newProfile = (id, p, created, ttlMs) =>
  sign(id, { kind: Kind.profile, priority: Priority.low, created, ttlMs, channel: channelId(PROFILES_CHANNEL), body: profileBody(p) });

// ---- key backup text ------------------------------------------------------------------

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const BACKUP_PREFIX = 'llk1';

const backupCheck = (seed) => sha256(concat(utf8('lifeline/key/v1'), seed)).subarray(0, 2);

/**
 * backupText writes a seed as "llk1-" and the RFC 4648 base32 (lower case,
 * no padding) of seed || the first 2 bytes of SHA-256("lifeline/key/v1" ||
 * seed), in groups of five letters joined by "-".
 */
export function backupText(seed) {
  u8(seed, 32, 'seed');
  const b = concat(seed, backupCheck(seed));
  let bits = 0;
  let acc = 0;
  let s = '';
  for (let i = 0; i < b.length; i++) {
    acc = (acc << 8) | b[i];
    bits += 8;
    while (bits >= 5) { s += B32[(acc >>> (bits - 5)) & 31]; bits -= 5; }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) s += B32[(acc << (5 - bits)) & 31];
  return BACKUP_PREFIX + '-' + s.match(/.{1,5}/g).join('-');
}

/**
 * parseBackup reads backupText's format back to the 32-byte seed, ignoring
 * case, spaces and dashes. It throws a ProtoError (malformed) that says
 * what is wrong: not a backup, a letter outside the alphabet, the wrong
 * length, or a checksum that does not match (a mistyped letter).
 */
export function parseBackup(textIn) {
  if (typeof textIn !== 'string') fail('malformed', 'key backup must be text');
  const t = textIn.toLowerCase().replace(/[\s-]+/g, '');
  if (t.slice(0, BACKUP_PREFIX.length) !== BACKUP_PREFIX) fail('malformed', 'not a Lifeline key backup: it must start with "llk1-"');
  const s = t.slice(BACKUP_PREFIX.length);
  const want = Math.ceil(34 * 8 / 5);
  for (let i = 0; i < s.length; i++) {
    if (B32.indexOf(s[i]) < 0) fail('malformed', 'key backup: "' + s[i] + '" is not one of its letters (a to z, 2 to 7)');
  }
  if (s.length !== want) fail('malformed', 'key backup: ' + s.length + ' letters after "llk1", want ' + want + ': one is missing or extra');
  const out = new Uint8Array(34);
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    acc = (acc << 5) | B32.indexOf(s[i]);
    bits += 5;
    if (bits >= 8) { out[n++] = (acc >>> (bits - 8)) & 0xff; bits -= 8; }
    acc &= (1 << bits) - 1;
  }
  // The last letter carries 3 bits beyond the data, always zero.
  if (acc !== 0) fail('malformed', 'key backup: the last letter is wrong');
  const seed = out.slice(0, 32);
  if (!equal(out.subarray(32), backupCheck(seed))) {
    fail('malformed', 'key backup: the checksum does not match: a letter is mistyped');
  }
  return seed;
}

// ---- the operator's proof (api/operator.go) ----------------------------------

/** hmacSha256 is HMAC-SHA256 (RFC 2104) of msg under key. */
export function hmacSha256(key, msg) {
  const block = 64;
  const k = new Uint8Array(block);
  k.set(key.length > block ? sha256(key) : key);
  const pad = (c) => k.map((b) => b ^ c);
  return sha256(concat(pad(0x5c), sha256(concat(pad(0x36), msg))));
}

/**
 * operatorHeader is the Authorization value with which an operator proves
 * they hold the admin token without sending it: the kit's Wi-Fi is plain
 * http. tMs is the node's time; body the request's bytes (empty for none).
 */
export function operatorHeader(token, method, target, tMs, body) {
  const msg = 'lifeline/operator/v1\n' + method + '\n' + target + '\n' + tMs + '\n' + toHex(sha256(body || new Uint8Array(0)));
  return 'Lifeline-Operator t=' + tMs + ', mac=' + toHex(hmacSha256(utf8(token), utf8(msg)));
}
