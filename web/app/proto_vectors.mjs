// Checks web/app/proto.js against the Go implementation's test vectors; not
// part of the app (app.js does not import it). `go test ./message` runs it.
//
//   node web/app/proto_vectors.mjs          check message/testdata/vectors.json
//                                           (written by Go) and vectors-js.json
//   node web/app/proto_vectors.mjs --write  first rewrite vectors-js.json with
//                                           fresh keys and randomness; Go's
//                                           TestVectors then verifies and opens it
//
// Everything runs as on the page's oldest browsers as far as built-ins go:
// before proto.js and noble.js load, this removes what Chrome 67 lacks
// (globalThis, Object.hasOwn, Array.prototype.at, ...), so a dependency on
// one fails here rather than on a phone.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const VECTORS = join(root, 'message', 'testdata', 'vectors.json');
const VECTORS_JS = join(root, 'message', 'testdata', 'vectors-js.json');
const write = process.argv.includes('--write');
const g = globalThis;
const webcrypto = g.crypto || (await import('node:crypto')).webcrypto;

// ---- Chrome 67's built-ins ----------------------------------------------------
// The list is web/browsertest/chrome67.js, which the browser tests use too.
const removed = (0, eval)(readFileSync(join(root, 'web', 'browsertest', 'chrome67.js'), 'utf8'))(g);
if (Object.prototype.hasOwnProperty.call(g, 'crypto')) { delete g.crypto; removed.push('crypto'); }
g.self = g;
g.crypto = { getRandomValues: (b) => webcrypto.getRandomValues(b) }; // all a page has over http

const p = await import('./proto.js');
const { toHex, fromHex, utf8, text } = p;

// ---- reporting -------------------------------------------------------------------
const failures = [];
const failf = (where, msg) => failures.push(where + ': ' + msg);
const expectEq = (where, got, want) => {
  if (got !== want) failf(where, 'got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
};
// outcome runs f and returns ['', value] or [error code, message].
function outcome(f) {
  try {
    return ['', f()];
  } catch (e) {
    if (!(e instanceof p.ProtoError)) return ['exception: ' + e.stack, e.message];
    return [e.code, e.message];
  }
}

// ---- the vendored bundle ---------------------------------------------------------
{
  const js = readFileSync(join(here, 'vendor', 'noble.js'));
  const md = readFileSync(join(here, 'vendor', 'VENDOR.md'), 'utf8');
  const m = /`noble\.js`[^\n]*SHA-256 `([0-9a-f]{64})`/.exec(md);
  const sum = createHash('sha256').update(js).digest('hex');
  if (!m || m[1] !== sum) failf('vendor/noble.js', 'SHA-256 ' + sum + ' is not the one VENDOR.md records: rebuild with make vendor-js');
}

// ---- proto.js's syntax: what the oldest browsers cannot parse ----------------------
{
  const src = readFileSync(join(here, 'proto.js'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const tooNew = [
    [/\?\./, 'optional chaining ?. (Chrome 80)'], [/\?\?/, 'nullish coalescing ?? (Chrome 80)'],
    [/(\|\||&&|\?\?)=/, 'logical assignment (Chrome 85)'], [/\d_\d/, 'numeric separators (Chrome 75)'],
    [/#[A-Za-z_$]/, 'private names (Chrome 74)'],
    [/\bglobalThis\b/, 'globalThis (Chrome 71)'], [/\bawait\b/, 'top-level await'],
  ];
  for (const [re, what] of tooNew) if (re.test(src)) failf('proto.js', 'uses ' + what + ', which the oldest target browsers lack');
}

// ---- vectors.json, written by Go ---------------------------------------------------
const V = JSON.parse(readFileSync(VECTORS, 'utf8'));
const ids = {};
for (const v of V.identities) {
  const id = p.identityFromSeed(fromHex(v.seed, 32));
  expectEq('identity ' + v.name, toHex(id.publicKey), v.public);
  ids[v.name] = id;
}
for (const c of V.channels) {
  const [code, id] = outcome(() => toHex(p.channelId(c.name)));
  expectEq('channel ' + JSON.stringify(c.name) + ' error', code, c.error || '');
  if (!code) expectEq('channel ' + JSON.stringify(c.name), id, c.id);
}
for (const t of V.ttls) {
  const [code, c] = outcome(() => p.ttlCode(t.ms));
  expectEq('ttl ' + t.ms + ' ms error', code, t.error || '');
  if (!code) {
    expectEq('ttl code for ' + t.ms + ' ms', c, t.code);
    expectEq('lifetime of code ' + t.code, p.ttlFromCode(t.code), t.lifetime_ms);
  }
}
for (const b of V.backups) checkBackup(b);

function checkBackup(b) {
  const seed = fromHex(b.seed, 32);
  expectEq('backupText(' + b.seed + ')', p.backupText(seed), b.text);
  const sloppy = ' ' + b.text.toUpperCase().replace(/-/g, ' ') + '\n';
  for (const t of [b.text, sloppy]) {
    const [code, got] = outcome(() => toHex(p.parseBackup(t)));
    expectEq('parseBackup(' + JSON.stringify(t) + ')', code ? code + ': ' + got : got, b.seed);
  }
  // A typo in any letter is caught and said to be one. (The 16-bit
  // checksum misses one typo in 65,536; none of these fixed ones.)
  const body = b.text.slice(5);
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '-') continue;
    const typo = b.text.slice(0, 5) + body.slice(0, i) + (body[i] === 'a' ? 'b' : 'a') + body.slice(i + 1);
    const [code, msg] = outcome(() => p.parseBackup(typo));
    if (code !== 'malformed' || !/checksum|last letter/.test(msg)) failf('parseBackup(' + typo + ')', 'a typo gave ' + code + ' ' + msg);
  }
  for (const [bad, why] of [[b.text.slice(0, -1), /missing or extra/], [b.text + 'a', /missing or extra/],
    [b.text.replace('llk1', 'llk2'), /must start with/], [b.text.slice(0, 8) + '0' + b.text.slice(9), /"0" is not one of its letters/]]) {
    const [code, msg] = outcome(() => p.parseBackup(bad));
    if (code !== 'malformed' || !why.test(msg)) failf('parseBackup(' + bad + ')', 'gave ' + code + ' ' + msg + ', want ' + why);
  }
}

// remake builds a vector's envelope again through proto.js's constructors,
// with the randomness Go drew.
function remake(v) {
  const id = ids[v.author];
  const ttl = v.ttl_ms;
  const rand = v.random ? (n) => { const r = fromHex(v.random); if (r.length !== n) throw new Error('random is ' + r.length + ' bytes, want ' + n); return r; } : undefined;
  switch (v.kind) {
    case p.Kind.text:
      if (v.verify_at) { // the worked example, signed through sign() itself
        return p.sign(id, { kind: v.kind, priority: v.priority, created: v.created, ttlMs: ttl, channel: p.channelId(v.channel), body: utf8(v.text) });
      }
      return p.newText(id, v.channel, v.text, v.created, ttl);
    case p.Kind.alert: return p.newAlert(id, v.channel, v.text, v.created, ttl);
    case p.Kind.direct: return p.newDirect(id, ids[v.recipient].publicKey, v.text, v.priority, v.created, ttl, rand);
    case p.Kind.receipt: return p.newReceipt(id, ids[v.recipient].publicKey, v.receipt, v.created);
    case p.Kind.team: return p.newTeamText(id, p.team(fromHex(v.team_secret, 32)), v.text, v.priority, v.created, ttl, rand);
    case p.Kind.profile: return p.newProfile(id, v.profile, v.created, ttl);
    case p.Kind.keyChange: {
      const kc = v.key_change;
      if (kc.voucher) return p.vouchKeyChange(id, fromHex(kc.old, 32), fromHex(kc.new, 32), v.created, ttl);
      return p.newKeyChange(id, byKey(kc.old), v.created, ttl);
    }
    default: return p.sign(id, { kind: v.kind, priority: v.priority, created: v.created, ttlMs: ttl, channel: p.channelId(v.channel), body: fromHex(v.body) });
  }
}

// byKey finds the identity whose public key is hex.
function byKey(hex) {
  for (const name in ids) if (toHex(ids[name].publicKey) === hex) return ids[name];
  throw new Error('no identity has the key ' + hex);
}

// kcJSON is a parsed key change as the vectors write it.
const kcJSON = (kc) => JSON.stringify(Object.assign({ old: toHex(kc.old), new: toHex(kc.new) }, kc.voucher ? { voucher: toHex(kc.voucher) } : {}));

// checkEnvelope verifies e's bytes and reads them as a member would.
function checkEnvelope(where, v, raw, now) {
  const [code, e] = outcome(() => p.verify(raw, now));
  if (code) return failf(where, 'does not verify: ' + code + ' ' + e);
  expectEq(where + ' id', e.id, v.id);
  expectEq(where + ' kind', e.kind, v.kind);
  expectEq(where + ' priority', e.priority, v.priority);
  expectEq(where + ' created', e.created, v.created);
  expectEq(where + ' has TTL', e.hasTTL, v.ttl_ms !== 0);
  expectEq(where + ' ttl', e.ttlMs, v.ttl_ms ? p.ttlFromCode(p.ttlCode(v.ttl_ms)) : p.DEFAULT_TTL_MS);
  expectEq(where + ' expires', e.expires, e.created + e.ttlMs);
  expectEq(where + ' author', toHex(e.author), toHex(ids[v.author].publicKey));
  expectEq(where + ' body', toHex(e.body), v.body);
  if (p.toChannel(e.kind)) expectEq(where + ' channel id', toHex(e.channel), v.channel_id);
  if (v.channel) expectEq(where + ' channel', toHex(e.channel), toHex(p.channelId(v.channel)));
  const open = (f) => { const [c, r] = outcome(f); if (c) failf(where, c + ' ' + r); return r; };
  switch (e.kind) {
    case p.Kind.text:
    case p.Kind.alert:
      expectEq(where + ' text', text(e.body), v.text);
      break;
    case p.Kind.direct: {
      expectEq(where + ' recipient', toHex(e.recipient), toHex(ids[v.recipient].publicKey));
      const pt = open(() => text(p.openDirect(ids[v.recipient], e)));
      expectEq(where + ' opened', pt, v.text);
      expectEq(where + ' opened by its author', outcome(() => p.openDirect(ids[v.author], e))[0], 'not_for_me');
      break;
    }
    case p.Kind.receipt:
      expectEq(where + ' receipt', JSON.stringify(p.receiptIds(e)), JSON.stringify(v.receipt));
      break;
    case p.Kind.team: {
      const t = p.team(fromHex(v.team_secret, 32));
      expectEq(where + ' team id', toHex(e.channel), toHex(t.id));
      expectEq(where + ' opened', open(() => text(p.openTeam(t, raw))), v.text);
      break;
    }
    case p.Kind.profile:
      expectEq(where + ' profile', JSON.stringify(open(() => p.parseProfile(e))), JSON.stringify({ name: v.profile.name, status: v.profile.status }));
      break;
    case p.Kind.keyChange: {
      const kc = open(() => p.parseKeyChange(e));
      if (kc) expectEq(where + ' key change', kcJSON(kc), JSON.stringify(v.key_change));
      expectEq(where + ' keys channel', toHex(e.channel), toHex(p.channelId(p.KEYS_CHANNEL)));
      break;
    }
  }
  return e;
}

let reproduced = 0;
for (const v of V.envelopes) {
  const where = 'envelope ' + v.name;
  const [code, raw] = outcome(() => remake(v));
  if (code) { failf(where, 'proto.js cannot make it: ' + code + ' ' + raw); continue; }
  if (toHex(raw) !== v.envelope) {
    failf(where, 'proto.js makes different bytes:\n   js ' + toHex(raw) + '\n   go ' + v.envelope);
  } else {
    reproduced++;
  }
  checkEnvelope(where, v, fromHex(v.envelope), v.verify_at || V.now);
}

for (const c of V.checks) {
  const where = 'check ' + c.name + (c.note ? ' (' + c.note + ')' : '');
  const [code, got] = outcome(() => {
    const e = p.verify(fromHex(c.envelope), V.now);
    switch (c.op) {
      case 'verify': return null;
      case 'open_direct': return text(p.openDirect(ids[c.identity], e));
      case 'open_team': return text(p.openTeam(p.team(fromHex(c.team_secret, 32)), e));
      case 'parse_profile': return p.parseProfile(e);
      case 'parse_keychange': return p.parseKeyChange(e);
      default: throw new Error('unknown op ' + c.op);
    }
  });
  if (code !== c.error) {
    failf(where, 'proto.js gives ' + (code ? code + ' (' + got + ')' : 'no error') + ', Go gives ' + (c.error || 'no error'));
    continue;
  }
  if (!code && c.op.indexOf('open') === 0) expectEq(where, got, c.text);
  if (!code && c.op === 'parse_profile') expectEq(where, JSON.stringify(got), JSON.stringify(c.profile));
  if (!code && c.op === 'parse_keychange') expectEq(where, kcJSON(got), JSON.stringify(c.key_change));
}

for (const r of V.recipients) {
  const [code, msg] = outcome(() => p.sealDirect(ids.alice, fromHex(r.key, 32), utf8('x')));
  expectEq('recipient ' + r.name + ' (' + msg + ')', code, r.error);
}

// ---- what only the page's API has ------------------------------------------------------
{
  const alice = ids.alice;
  const general = p.channelId('general');
  const refuse = (what, draft, want) => {
    const [code, msg] = outcome(() => p.sign(alice, Object.assign({ kind: 1, priority: 1, created: V.now, channel: general, body: utf8('x') }, draft)));
    if (code !== want) failf('sign refuses ' + what, 'gave ' + (code || 'no error') + ' ' + (code ? msg : '') + ', want ' + want);
  };
  refuse('an unknown kind', { kind: 9 }, 'malformed');
  refuse('priority 4', { priority: 4 }, 'malformed');
  refuse('an alert at normal priority', { kind: 5 }, 'malformed');
  refuse('created below 0', { created: -1 }, 'malformed');
  refuse('created over 48 bits', { created: 2 ** 48 }, 'malformed');
  refuse('a TTL over the maximum', { ttlMs: p.MAX_TTL_MS + 1 }, 'malformed');
  refuse('a negative TTL', { ttlMs: -1 }, 'malformed');
  refuse('a 7-byte channel', { channel: general.subarray(0, 7) }, 'malformed');
  refuse('a body over 4096 bytes', { body: new Uint8Array(4097).fill(97) }, 'too_large');
  refuse('a direct message to an 8-byte recipient', { kind: 3, recipient: general, body: new Uint8Array(48) }, 'malformed');
  const t = p.team(new Uint8Array(32));
  expectEq('sealTeam refuses empty text', outcome(() => p.sealTeam(alice, t, new Uint8Array(0)))[0], 'malformed');
  expectEq('sealTeam refuses long text', outcome(() => p.sealTeam(alice, t, new Uint8Array(4057).fill(97)))[0], 'too_large');
  expectEq('team refuses a short secret', outcome(() => p.team(new Uint8Array(16)))[0], 'bad_key');
  expectEq('newDirect refuses empty text', outcome(() => p.newDirect(alice, ids.bob.publicKey, '', 1, V.now))[0], 'malformed');
  expectEq('profileBody refuses a long name', outcome(() => p.profileBody({ name: 'x'.repeat(65) }))[0], 'malformed');
  expectEq('vouchKeyChange refuses to vouch for its own key', outcome(() => p.vouchKeyChange(alice, alice.publicKey, ids.bob.publicKey, V.now))[0], 'malformed');
  expectEq('vouchKeyChange refuses a new key nobody can write to', outcome(() => p.vouchKeyChange(alice, ids.bob.publicKey, new Uint8Array(32), V.now))[0], 'bad_key');
  expectEq('profileBody refuses a lone surrogate', outcome(() => p.profileBody({ name: 'a\ud800' }))[0], 'malformed');
  const a = { created: 5, id: '01' + '00'.repeat(31) };
  const b = { created: 5, id: '00' + 'ff'.repeat(31) };
  expectEq('newerProfile: same time, larger id', p.newerProfile(a, b), true);
  expectEq('newerProfile: later wins', p.newerProfile({ created: 6, id: '00' }, a), true);
  const bytes = new Uint8Array(256).map((_, i) => i);
  expectEq('base64url round trip', toHex(p.fromBase64url(p.toBase64url(bytes))), toHex(bytes));
  expectEq('base64url has no padding', /[=+/]/.test(p.toBase64url(bytes.subarray(0, 5))), false);
  expectEq('fromHex refuses odd length', outcome(() => fromHex('abc'))[0], 'malformed');
  // Fresh randomness: two seals of the same text differ.
  const d1 = p.sealDirect(alice, ids.bob.publicKey, utf8('same'));
  const d2 = p.sealDirect(alice, ids.bob.publicKey, utf8('same'));
  expectEq('sealDirect draws a fresh ephemeral key', toHex(d1) === toHex(d2), false);
}

// ---- vectors-js.json: written here, checked by Go too --------------------------------
if (write) writeFileSync(VECTORS_JS, JSON.stringify(makeJSVectors(), null, 2) + '\n');
const J = JSON.parse(readFileSync(VECTORS_JS, 'utf8'));
for (const v of J.identities) ids['js:' + v.name] = p.identityFromSeed(fromHex(v.seed, 32));
for (const v of J.envelopes) {
  const named = Object.assign({}, v, { author: 'js:' + v.author, recipient: v.recipient && 'js:' + v.recipient });
  checkEnvelope('vectors-js.json ' + v.name, named, fromHex(v.envelope), J.now);
}
for (const b of J.backups) checkBackup(b);

function makeJSVectors() {
  const now = Date.now();
  const people = ['ana', 'ben', 'cleo'].map((name) => ({ name, id: p.newIdentity() }));
  const [ana, ben, cleo] = people.map((x) => x.id);
  const out = {
    comment: 'Envelopes made by web/app/proto.js with fresh keys and randomness (node web/app/proto_vectors.mjs --write); ' +
      'message/vectors_test.go verifies and opens them with the Go implementation.',
    now,
    identities: people.map((x) => ({ name: x.name, seed: toHex(x.id.seed), public: toHex(x.id.publicKey) })),
    channels: ['general', '#Équipe Nord ', 'İzmir', p.PROFILES_CHANNEL].map((name) => ({ name, id: toHex(p.channelId(name)) })),
    backups: people.map((x) => ({ seed: toHex(x.id.seed), text: p.backupText(x.id.seed) })),
    envelopes: [],
  };
  const secret = p.random(32);
  const t = p.team(secret);
  const add = (name, author, raw, extra) => {
    const e = p.decode(raw);
    out.envelopes.push(Object.assign({
      name, author, kind: e.kind, priority: e.priority, created: e.created, ttl_ms: 0,
    }, extra, {
      channel_id: e.channel ? toHex(e.channel) : undefined, body: toHex(e.body), envelope: toHex(raw), id: e.id,
    }));
    return e;
  };
  const at = (s) => now - s * 1000;
  const txt = add('text', 'ana', p.newText(ana, '#Équipe Nord ', 'eau potable à l\'école', at(60), 0),
    { channel: '#Équipe Nord ', text: 'eau potable à l\'école' });
  add('text_ttl', 'ben', p.newText(ben, 'general', 'road open until 18:00 🚧', at(55), 45 * 60000),
    { channel: 'general', text: 'road open until 18:00 🚧', ttl_ms: 45 * 60000 });
  add('alert', 'cleo', p.newAlert(cleo, 'general', 'SOS: injured at the bridge', at(50), 3 * 3600000),
    { channel: 'general', text: 'SOS: injured at the bridge', ttl_ms: 3 * 3600000 });
  const dm = add('direct', 'ana', p.newDirect(ana, ben.publicKey, 'the key is under the stone', p.Priority.normal, at(45), 0),
    { recipient: 'ben', text: 'the key is under the stone' });
  add('direct_high_ttl', 'ben', p.newDirect(ben, ana.publicKey, 'got it 👍', p.Priority.high, at(40), 7200000),
    { recipient: 'ana', text: 'got it 👍', ttl_ms: 7200000 });
  add('receipt', 'ben', p.newReceipt(ben, ana.publicKey, [dm.id, txt.id], at(35)), { recipient: 'ana', receipt: [dm.id, txt.id] });
  add('team', 'cleo', p.newTeamText(cleo, t, 'team north: 3 tents left', p.Priority.normal, at(30), 0),
    { team_secret: toHex(secret), text: 'team north: 3 tents left' });
  add('team_alert', 'ana', p.newTeamText(ana, t, 'évacuation ⚠', p.Priority.alert, at(25), 3600000),
    { team_secret: toHex(secret), text: 'évacuation ⚠', ttl_ms: 3600000 });
  add('profile', 'ana', p.newProfile(ana, { name: 'Ana Ø <medic>', status: 'at the clinic & school' }, at(20), 0),
    { channel: p.PROFILES_CHANNEL, profile: { name: 'Ana Ø <medic>', status: 'at the clinic & school' } });
  add('profile_no_status', 'ben', p.newProfile(ben, { name: 'Ben' }, at(15), 30 * 24 * 3600000),
    { channel: p.PROFILES_CHANNEL, profile: { name: 'Ben', status: '' }, ttl_ms: 30 * 24 * 3600000 });
  add('keychange', 'cleo', p.newKeyChange(cleo, ben, at(10), 365 * 24 * 3600000),
    { channel: p.KEYS_CHANNEL, key_change: { old: toHex(ben.publicKey), new: toHex(cleo.publicKey) }, ttl_ms: 365 * 24 * 3600000 });
  add('keychange_vouched', 'ana', p.vouchKeyChange(ana, ben.publicKey, cleo.publicKey, at(5), 0),
    { channel: p.KEYS_CHANNEL, key_change: { old: toHex(ben.publicKey), new: toHex(cleo.publicKey), voucher: toHex(ana.publicKey) } });
  return out;
}

if (failures.length) {
  console.error(failures.length + ' failures:\n' + failures.join('\n'));
  process.exit(1);
}
console.log('proto.js agrees with Go: ' + reproduced + '/' + V.envelopes.length + ' envelopes byte for byte, ' +
  V.checks.length + ' checks, ' + V.channels.length + ' channel names, ' + V.recipients.length + ' recipients; ' +
  J.envelopes.length + ' envelopes of vectors-js.json read back; built-ins removed as on Chrome 67: ' + removed.length);
