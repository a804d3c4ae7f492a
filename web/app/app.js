// The phone app. Each person's key is made here and never leaves the
// phone (IndexedDB); the page signs every envelope, seals direct messages
// and team messages, and opens what is addressed to it. The node only
// stores and carries signed envelopes (docs/API.md).
//
// Screens are hash routes: #/c/<channel>, #/t/<team id>, #/d/<key>,
// #/chats, #/people, #/status, #/settings. An invite to a team is
// #team=<secret>&name=<name>.

import * as P from './proto.js';
import * as db from './db.js';
import * as i18n from './i18n.js';
import { qrSVG } from './qr.js';

const t = i18n.t;
const tn = i18n.tn;

// MAX_PEOPLE bounds the profiles the phone remembers.
const MAX_PEOPLE = 1000;
// PAGE is how many messages a conversation shows at once, and pages back by.
const PAGE = 50;
// PROFILE_TTL is how long a profile lives: a name should not vanish.
const PROFILE_TTL = 365 * 24 * 3600 * 1000;
// LORA_WHOLE is the longest envelope that crosses LoRa in one frame;
// LORA_FRAGMENT what each fragment of a longer one carries (radio/frame.go).
const LORA_WHOLE = 253;
const LORA_FRAGMENT = 247;
// KEY_CHANGE_TTL is how long a key change lives: as long as a
// conversation may wait for someone to come back.
const KEY_CHANGE_TTL = 365 * 24 * 3600 * 1000;
// ACK_HELD bounds the receipts for held messages sent when someone becomes
// a correspondent: one receipt's worth, the newest.
const ACK_HELD = P.MAX_RECEIPT_IDS;
// ADMIN is the sessionStorage key of the operator's admin token: kept only
// while the tab is open, never in IndexedDB, so a seized phone does not
// hand over the kit.
const ADMIN = 'lifeline-admin';

const S = {
  seed: null, // the person's Ed25519 seed: their key, kept in IndexedDB
  me: null, // {seed, publicKey}, once derived (see me)
  meHex: '', // the public key, hex; '' until known
  settings: {},
  channels: [], // [{name, id (hex)}]
  teams: [], // [{name, secret (base64url), id (hex), t}]
  people: new Map(), // key hex -> {key, name, status, created, id}
  corr: new Set(), // correspondents: keys this person wrote a direct message to (receipts.go's rule)
  kc: [], // key changes about people here: [{old, new, voucher ('' if signed by both), id, merged}]
  node: null, // the last GET /api/v1/status
  online: false,
  es: null,
  defaultChannel: 'general',
  lastRead: {}, // conv -> created of the newest message seen
  skew: 0, // the node's clock minus the phone's, ms
  route: null,
  view: null, // the rendered conversation: {conv, msgs, ready}
};

// ---- small DOM helper --------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  put(el, kids);
  return el;
}

// put appends kids (nested arrays allowed; null, undefined and false
// skipped) to el. Element.replaceChildren and Array.prototype.flat are too
// new for the oldest phones (Chrome 86 and 69).
function put(el, kids) {
  for (const kid of kids) {
    if (Array.isArray(kid)) put(el, kid);
    else if (kid !== null && kid !== undefined && kid !== false) el.append(kid);
  }
}

function replace(el, ...kids) {
  while (el.firstChild) el.removeChild(el.firstChild);
  put(el, kids);
}

const $ = (sel) => document.querySelector(sel);
const fingerprint = (hex) => hex.slice(0, 4) + ' ' + hex.slice(4, 8) + ' ' + hex.slice(8, 12);
const fmtTime = (ms) => new Date(ms).toLocaleString(document.documentElement.lang, { dateStyle: 'short', timeStyle: 'short' });

// BIDI matches the invisible characters that reorder text: in a name they
// could make one name look like another.
const BIDI = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function personName(hex) {
  if (hex === S.meHex) return t('you');
  let p = S.people.get(hex);
  // A new key without a name yet goes by the name of the key it replaced.
  for (const c of S.kc) if (!p && c.merged && c.new === hex) p = S.people.get(c.old);
  if (p) return p.name.replace(BIDI, '');
  return S.node && hex === S.node.id ? t('the_node') : t('person_unnamed');
}

function convTitle(conv) {
  const [kind, id] = conv.split(':');
  if (kind === 'c') {
    const c = S.channels.find((x) => x.id === id);
    return c ? '#' + c.name : '#' + id;
  }
  if (kind === 't') {
    const tm = S.teams.find((x) => x.id === id);
    return tm ? tm.name : t('team');
  }
  // Anyone can take any name: the key's fingerprint goes with it.
  return personName(id) + ' · ' + fingerprint(id).slice(0, 9);
}

// me returns the person's identity. Deriving the public key from the seed
// costs a slow phone a quarter of a second (the first Ed25519 point
// multiplication builds its tables), so it is done once, when the key is
// made, and kept beside the seed; a new visitor's page shows the channel
// first and derives it just after.
function me() {
  if (!S.me) {
    S.me = P.identityFromSeed(S.seed);
    S.meHex = P.toHex(S.me.publicKey);
    db.set('pub', S.me.publicKey);
  }
  return S.me;
}

// now is the time envelopes are signed with: the phone's clock, unless it
// is so far from the node's that the node would refuse what it signs (a
// phone reset to a default date after a flat battery; the node allows an
// hour ahead). Then the node's clock, which at least its own neighbours
// share. S.skew is the node's clock minus the phone's, at the last status.
const now = () => Date.now() + (Math.abs(S.skew) > 30 * 60e3 ? S.skew : 0);

// myHex is the person's public key, hex, derived if need be.
const myHex = () => P.toHex(me().publicKey);

// ---- the node ----------------------------------------------------------------

// api calls the node. Whether it answers is what "online" means: any
// answer sets it, a network failure clears it.
async function api(path, opts) {
  let r;
  try {
    r = await fetch('/api/v1/' + path, opts);
  } catch (e) {
    console.warn('node unreachable: ' + path + ': ' + e.message);
    setOnline(false);
    throw e;
  }
  setOnline(true);
  if (!r.ok) {
    let msg = r.status + '';
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r;
}

const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

// connect learns which kit this is (from statusP, a status already asked
// for, if given), then follows it once `after` (a promise: the first
// screen drawn) settles, so that a slow phone draws before it catches up.
async function connect(statusP, after) {
  const st = await (statusP || api('status').then((r) => r.json(), () => null));
  if (!st) {
    setTimeout(connect, 5000);
    return;
  }
  S.node = st;
  S.skew = st.time - Date.now();
  showKitName(st);
  tellTime(st);
  S.defaultChannel = st.default_channel || 'general';
  Promise.resolve(after).then(() => follow(st)).catch((e) => console.warn('connect', e));
}

// tellTime gives the node this phone's clock when the node has nothing
// better than its own unconfirmed one (a board without a real-time clock
// boots with a stale time); phones take theirs from the cell network. The
// node takes the median of the phones that tell it, and anything better (a
// hub, a GPS) outranks them.
async function tellTime(st) {
  if (!st.clock || (st.clock.source !== 'system' && st.clock.source !== 'floor')) return;
  const r = await api('time', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ time: Date.now() }) }).catch(() => null);
  const a = r && r.ok ? await r.json().catch(() => null) : null;
  if (a) {
    S.node.time = a.time;
    S.node.clock = a.clock;
    S.skew = a.time - Date.now();
  }
}

// follow catches up with kit st and stays with it: the courier's upload on
// a kit met anew, the outbox, and the event stream.
async function follow(st) {
  await db.set('defaultChannel', S.defaultChannel);
  const last = await db.get('lastNode');
  if (last !== st.id) {
    // A new kit: carry over what this phone holds that the kit lacks, and
    // fetch what the kit holds for this person.
    await db.set('lastNode', st.id);
    courier().catch((e) => console.warn('courier', e));
    if (S.meHex) mine().catch((e) => console.warn('fetching direct messages', e)); // a new key has none
  }
  flush();
  listen(st);
}

function setOnline(on) {
  if (S.online === on) return;
  S.online = on;
  if (on) flush();
  document.body.classList.toggle('offline', !on);
  const b = $('#net');
  if (b) b.textContent = on ? '' : t('offline');
}

// listen follows the node's event stream from where this phone left off
// on this node (or the last few hundred messages on a first visit).
async function listen(st) {
  const key = 'cursor:' + st.id;
  let after = await db.get(key);
  if (after === undefined || after > st.last_seq) after = Math.max(0, st.last_seq - 500);
  // Replaced only now, after the wait: two connects racing leave one
  // stream, not an orphan.
  if (S.es) S.es.close();
  const es = new EventSource('/api/v1/events?raw=1&after=' + after);
  S.es = es;
  // Events come in bursts (the backlog when the phone arrives): they are
  // ingested together, a batch at a time, and the position saved after
  // is the batch's own last, so nothing unstored is ever skipped.
  let batch = [];
  const drain = () => {
    const items = batch;
    batch = [];
    const seq = items[items.length - 1][2];
    ingest(items).then(() => db.set(key, seq), (e) => console.warn('ingest', e));
  };
  es.addEventListener('message', (ev) => {
    const m = JSON.parse(ev.data);
    batch.push([b64(m.envelope), m, Number(ev.lastEventId)]);
    if (batch.length === 1) setTimeout(drain, 50);
  });
  let broken = false;
  es.onopen = () => {
    setOnline(true);
    // Back after a break: it may be another kit at the same address (a
    // person walked to the next camp, where the kit's address is the
    // same). Then start over with that kit.
    if (broken) {
      broken = false;
      api('status').then((r) => r.json()).then((now) => {
        if (S.es === es && now.id !== S.node.id) connect();
      }, () => null);
    }
  };
  es.onerror = () => {
    broken = true;
    setOnline(false); // EventSource retries by itself, unless CLOSED
    if (es.readyState === EventSource.CLOSED && S.es === es) setTimeout(connect, 3000);
  };
}

// ingest takes envelopes from the node, stores those new to the phone in
// one IndexedDB transaction (a slow phone pays per transaction, not per
// message), and opens what is addressed to this person. items are
// [raw, meta] pairs; meta is the node's message object, if any.
async function ingest(items) {
  const msgs = [];
  const metas = new Map();
  for (const [raw, meta] of items) {
    let m;
    try { m = classify(raw); } catch (e) { console.warn('ingest: ' + e.message); continue; }
    if (m.mine && meta) m.state = stateOf(meta);
    msgs.push(m);
    if (meta) metas.set(m.id, meta);
  }
  const { added, existing } = await db.putNew(msgs);
  for (const old of existing) {
    if (old.mine && metas.has(old.id)) await advance(old, metas.get(old.id));
  }
  let badges = false;
  for (const m of added) {
    if (m.env.kind === P.Kind.receipt && P.toHex(m.env.recipient) === S.meHex) await receipt(m.env, m.author);
    if (m.env.kind === P.Kind.profile) await profile(m.env, m.author);
    if (m.env.kind === P.Kind.keyChange) await keyChange(m.raw);
    if (m.mine && m.env.kind === P.Kind.direct) await correspondent(P.toHex(m.env.recipient));
    if (m.ack) acknowledge(m.author, m.id);
    if (m.kind === P.Kind.alert || (m.prio === P.Priority.alert && m.conv)) alertArrived(m);
    if (S.view && S.view.conv === m.conv) showMessage(m);
    else if (m.conv && !m.mine) badges = true;
  }
  if (badges) renderBadges();
  if (added.length) db.evict();
  return added.length;
}

const stateOf = (meta) => (meta.delivered ? 'delivered' : meta.left ? 'left' : 'stored');

// classify decodes an envelope into the phone's record of it: which
// conversation it belongs to and its text, opened if it is sealed to this
// person or their teams. env (the decoded envelope) is not stored.
function classify(raw) {
  const e = P.decode(raw);
  const author = P.toHex(e.author);
  const mine = author === S.meHex;
  const m = { id: e.id, raw, created: e.created, got: Date.now(), author, kind: e.kind, prio: e.priority, conv: '', text: '', mine, state: mine ? 'stored' : '' };
  Object.defineProperty(m, 'env', { value: e, enumerable: false });
  switch (e.kind) {
    case P.Kind.text:
    case P.Kind.alert:
      m.conv = 'c:' + P.toHex(e.channel);
      m.text = P.text(e.body);
      break;
    case P.Kind.team: {
      const tm = S.teams.find((x) => x.id === P.toHex(e.channel));
      m.conv = 't:' + P.toHex(e.channel);
      if (tm) m.text = tryText(() => P.openTeam(tm.t, e));
      break;
    }
    case P.Kind.direct: {
      const to = P.toHex(e.recipient);
      if (to === S.meHex) {
        m.conv = 'd:' + alias(author);
        m.text = tryText(() => P.openDirect(me(), e));
        // A receipt tells its author this person is here, and when: only
        // correspondents get one, or a throwaway key would learn when
        // anyone is online (see correspondent).
        if (!mine && S.corr.has(author)) Object.defineProperty(m, 'ack', { value: true, enumerable: false });
      } else if (mine) {
        m.conv = 'd:' + alias(to); // sent from this key elsewhere: sealed to them
      }
      break;
    }
    default:
  }
  return m;
}

function tryText(open) {
  try { return P.text(open()); } catch (e) { return ''; }
}

async function advance(m, meta) {
  const state = stateOf(meta);
  const rank = { queued: 0, stored: 1, left: 2, delivered: 3 };
  if ((rank[state] || 0) > (rank[m.state] || 0)) {
    m.state = state;
    await db.putMsg(m);
    updateState(m);
  }
}

// receipt marks this person's direct messages delivered: only the
// recipient's own key can sign that it has them.
async function receipt(e, author) {
  for (const id of P.receiptIds(e)) {
    const m = await db.getMsg(id);
    if (m && m.mine && m.kind === P.Kind.direct && m.conv === 'd:' + alias(author) && m.state !== 'delivered') {
      m.state = 'delivered';
      await db.putMsg(m);
      updateState(m);
    }
  }
}

async function profile(e, author) {
  let p;
  try { p = P.parseProfile(e); } catch (err) { return; }
  const old = S.people.get(author);
  if (old && !P.newerProfile({ created: e.created, id: e.id }, old)) return;
  const person = { key: author, name: p.name, status: p.status || '', created: e.created, id: e.id };
  S.people.set(author, person);
  await db.putPerson(person);
  if (S.people.size > MAX_PEOPLE) {
    // Anyone can mint keys and profiles: the phone keeps the newest.
    let oldest = null;
    for (const x of S.people.values()) if (!oldest || x.created < oldest.created) oldest = x;
    S.people.delete(oldest.key);
    await db.deletePerson(oldest.key);
  }
  if (location.hash === '#/people') renderPeople();
}

// correspondent records that this person wrote to key: from now on their
// direct messages are acknowledged, and the newest already held are
// acknowledged at once (a reply is what makes a message delivered). Only
// the person's own acts make a correspondent: writing a direct message
// (from this phone or, with the same key, another), or following a key
// change of someone who was one. Opening a stranger's message is not
// enough: anyone could then learn when the person looks.
async function correspondent(key) {
  if (S.corr.has(key) || key === S.meHex) return;
  S.corr.add(key);
  await db.set('corr', [...S.corr]);
  const held = (await db.conversation('d:' + alias(key), Infinity, 4 * ACK_HELD))
    .filter((m) => m.author === key && m.kind === P.Kind.direct && now() - m.created < 7 * 24 * 3600e3);
  for (const m of held.slice(-ACK_HELD)) acknowledge(key, m.id);
}

// alias is the key that now stands for key: the last of the key changes
// this person follows (a few steps at most: changes can form a loop).
function alias(key) {
  for (let i = 0; i < 4; i++) {
    const c = S.kc.find((x) => x.merged && x.old === key);
    if (!c) break;
    key = c.new;
  }
  return key;
}

// keyChange reads a key change, checked here whatever the node says (a
// node may lie): the envelope's signature, and the statement (a change
// signed by both carries the old key's signature). Only changes about
// people this phone knows are kept: anyone can mint keys and changes. One
// signed by both is followed at once; one vouched by a third key waits
// for the person to accept it (see keyChangeNotes), and so does a second,
// different change of a key already followed.
async function keyChange(raw) {
  let e;
  let kc;
  try {
    e = P.verify(raw, now());
    kc = P.parseKeyChange(e);
  } catch (err) {
    console.warn('key change ignored: ' + err.message);
    return;
  }
  const c = { old: P.toHex(kc.old), new: P.toHex(kc.new), voucher: kc.voucher ? P.toHex(kc.voucher) : '', id: e.id, merged: false };
  if (c.old === S.meHex || c.new === S.meHex) return; // this person's own
  if (S.kc.some((x) => x.old === c.old && x.new === c.new && (x.merged || x.voucher === c.voucher))) return;
  const known = S.corr.has(c.old) || S.people.has(c.old) || (await db.conversation('d:' + c.old, Infinity, 1)).length > 0;
  if (!known || S.kc.length >= MAX_PEOPLE) return;
  S.kc.push(c);
  if (!c.voucher && !S.kc.some((x) => x.merged && x.old === c.old)) await followKey(c);
  else await saveKC();
  if (S.view && (S.view.conv === 'd:' + c.old || S.view.conv === 'd:' + c.new)) route();
  renderBadges();
}

const saveKC = () => db.set('kc', S.kc);

// followKey moves the conversation with c.old to c.new: what was written
// stays, and what the person writes goes to the new key.
async function followKey(c) {
  for (const x of S.kc) if (x.old === c.old && x !== c) x.merged = false;
  c.merged = true;
  await saveKC();
  const to = 'd:' + alias(c.new);
  for (const m of await db.conversation('d:' + c.old, Infinity, Infinity)) {
    m.conv = to;
    await db.putMsg(m);
  }
  if (S.corr.has(c.old)) await correspondent(c.new);
}

// Receipts for what arrived together go together: one per author.
const acks = new Map();
let ackTimer = null;
function acknowledge(author, id) {
  if (!acks.has(author)) acks.set(author, []);
  acks.get(author).push(id);
  clearTimeout(ackTimer);
  ackTimer = setTimeout(async () => {
    for (const [who, ids] of acks) {
      for (let i = 0; i < ids.length; i += P.MAX_RECEIPT_IDS) {
        const raw = P.newReceipt(me(), P.fromHex(who, 32), ids.slice(i, i + P.MAX_RECEIPT_IDS), now());
        await queue(raw, {});
      }
    }
    acks.clear();
    flush();
  }, 500);
}

// queue keeps a signed envelope in the outbox until a node has it. The
// envelope is signed once: sent again after a failure it has the same id,
// so it is never stored twice.
async function queue(raw, fields) {
  const e = P.decode(raw);
  const m = Object.assign({ id: e.id, raw, created: e.created, got: Date.now(), author: S.meHex, kind: e.kind, prio: e.priority, conv: '', text: '', mine: true, state: 'queued' }, fields);
  await db.putMsg(m);
  return m;
}

let flushing = false;
async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    const out = (await db.byState('queued')).sort((a, b) => a.created - b.created);
    for (const m of out) {
      try {
        await api('envelopes', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: m.raw });
        m.state = 'stored';
      } catch (e) {
        if (e.status === 422) {
          m.state = 'refused';
          m.err = e.message;
        } else {
          console.warn('outbox: ' + e.message);
          break; // the node is away, full or busy: keep the rest for later
        }
      }
      await db.putMsg(m);
      updateState(m);
    }
  } finally {
    flushing = false;
  }
}

// poll asks the node how far this person's recent messages have gone:
// "left this node" is the node's knowledge, not an event on the stream.
async function poll() {
  if (!S.online) {
    await api('status').catch(() => null); // back?
  }
  if (S.online) {
    const t0 = now();
    const open = [].concat(await db.byState('stored'), await db.byState('left'))
      .filter((m) => m.conv && t0 - m.created < 7 * 24 * 3600e3 && !(m.state === 'left' && m.kind !== P.Kind.direct))
      .sort((a, b) => b.created - a.created)
      .slice(0, 20); // the newest: what the person is watching
    for (const m of open) {
      try {
        await advance(m, await (await api('messages/' + m.id)).json());
      } catch (e) {
        if (!e.status) break;
      }
    }
    flush();
  }
  setTimeout(poll, 4000);
}

// courier uploads what the phone holds that this node lacks: a phone
// walking between camps carries messages between kits with no link.
async function courier() {
  const held = (await db.all()).filter((m) => m.state !== 'queued' && m.state !== 'refused');
  for (let i = 0; i < held.length; i += 1024) {
    const chunk = held.slice(i, i + 1024);
    const body = P.concat(...chunk.map((m) => P.fromHex(m.id, 32)));
    const r = await api('missing', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
    const missing = new Uint8Array(await r.arrayBuffer());
    const want = new Set();
    for (let j = 0; j < missing.length; j += 32) want.add(P.toHex(missing.subarray(j, j + 32)));
    const envs = chunk.filter((m) => want.has(m.id)).map((m) => m.raw);
    for (let j = 0; j < envs.length; j += 200) await upload(envs.slice(j, j + 200));
  }
}

async function upload(envs) {
  let n = 0;
  for (const e of envs) n += 2 + e.length;
  const body = new Uint8Array(n);
  let off = 0;
  for (const e of envs) {
    body[off] = e.length >> 8;
    body[off + 1] = e.length & 255;
    body.set(e, off + 2);
    off += 2 + e.length;
  }
  await api('batch', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
}

// mine fetches the newest direct messages to this person the node holds,
// however old: someone who moves to a kit finds what was written to them.
async function mine() {
  const list = await (await api('messages?raw=1&limit=' + 4 * PAGE + '&to=' + S.meHex)).json();
  await ingest(list.map((m) => [b64(m.envelope), m]));
}

// history fetches older messages of a conversation from the node, when
// the phone has no more of them. It reports whether the node had any.
async function history(conv, oldest) {
  if (!S.online) return false;
  const [kind, id] = conv.split(':');
  const before = oldest ? '&before=' + oldest.created + '&before_id=' + oldest.id : '';
  const queries = kind === 'd' ? ['to=' + myHex(), 'to=' + id] : ['channel_id=' + id];
  let got = 0;
  for (const q of queries) {
    const list = await (await api('messages?raw=1&limit=' + PAGE + '&' + q + before)).json();
    const items = list.filter((m) => kind !== 'd' || m.author === id || m.author === S.meHex).map((m) => [b64(m.envelope), m]);
    got += items.length;
    await ingest(items);
  }
  return got > 0;
}

// ---- sending ------------------------------------------------------------------

async function send(conv, body, alert) {
  const [kind, id] = conv.split(':');
  const at = now();
  const prio = alert ? P.Priority.alert : P.Priority.normal;
  let raw;
  if (kind === 'c') {
    const c = S.channels.find((x) => x.id === id);
    raw = alert ? P.newAlert(me(), c.name, body, at) : P.newText(me(), c.name, body, at);
  } else if (kind === 't') {
    raw = P.newTeamText(me(), S.teams.find((x) => x.id === id).t, body, prio, at);
  } else {
    raw = P.newDirect(me(), P.fromHex(id, 32), body, prio, at);
    await correspondent(id);
  }
  const m = await queue(raw, { conv, text: body });
  showMessage(m, true);
  flush();
}

// frames says how an envelope of n bytes crosses LoRa.
const frames = (n) => (n <= LORA_WHOLE ? 1 : Math.ceil(n / LORA_FRAGMENT));

// textLimit is the most bytes of text an envelope to conv carries: the
// body limit less what sealing adds.
function textLimit(conv) {
  return P.MAX_BODY - ({ d: 48, t: 40 }[conv[0]] || 0);
}

// overhead is what the envelope adds to a text in conv.
function overhead(conv) {
  const kind = conv[0];
  if (kind === 'd') return 8 + 32 + 32 + 64 + 48;
  if (kind === 't') return 8 + 8 + 32 + 64 + 40;
  return 8 + 8 + 32 + 64;
}

// ---- alerts ---------------------------------------------------------------------

function alertArrived(m) {
  if (m.mine || now() - m.created > 3600e3) return;
  if (m.conv[0] === 'c' && !S.channels.some((c) => 'c:' + c.id === m.conv)) return;
  if (m.conv[0] === 't' && !m.text) return;
  const bar = $('#alert');
  replace(bar,
    h('strong', { text: t('alert_from', { where: convTitle(m.conv) }) }), ' ',
    // Each part isolated, the punctuation outside: a name and a text in
    // different scripts must not reorder each other.
    m.conv[0] === 'd' ? null : [h('bdi', { text: personName(m.author) }), ' · ', h('bdi', { text: fingerprint(m.author).slice(0, 9) }), ': '],
    h('bdi', { text: m.text || '' }), ' ',
    h('button', { type: 'button', class: 'link', 'aria-label': t('close'), onclick: () => { bar.hidden = true; } }, '×'),
    h('button', { type: 'button', class: 'link', onclick: () => { location.hash = '#/' + m.conv.replace(':', '/'); bar.hidden = true; } }, t('open')),
  );
  bar.hidden = false;
  if (navigator.vibrate) navigator.vibrate([300, 100, 300, 100, 300]);
}

// ---- rendering --------------------------------------------------------------------

function screen(title, back, ...body) {
  replace($('#title'), h('bdi', { text: title }));
  $('#back').hidden = !back;
  replace($('#main'), body);
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('on', location.hash.startsWith(a.getAttribute('href')));
  }
}

async function route() {
  const hash = location.hash || '';
  if (hash.startsWith('#team=')) return joinTeamFromLink(hash.slice(1));
  const [, view, arg] = hash.split('/');
  S.view = null;
  switch (view) {
    case 'c': return openConversation('c:' + (await ensureChannel(decodeURIComponent(arg || S.defaultChannel))).id);
    case 't':
      if (!S.teams.some((x) => x.id === arg)) return renderNotMember();
      return openConversation('t:' + arg);
    case 'd':
      if (!/^[0-9a-f]{64}$/.test(arg || '')) return location.replace('#/chats');
      if (alias(arg) !== arg) return location.replace('#/d/' + alias(arg));
      return openConversation('d:' + arg);
    case 'operator': return renderOperatorSignIn();
    case 'chats': return renderChats();
    case 'people': return renderPeople();
    case 'status': return renderStatus();
    case 'settings': return renderSettings();
    default:
      location.replace('#/c/' + encodeURIComponent(S.defaultChannel));
      return null;
  }
}

// renderNotMember is a team link without the team's secret: the phone
// carries its messages, but only an invite lets a person read them.
function renderNotMember() {
  screen(t('team'), true, h('p', { class: 'notice', text: t('team_not_member') }));
}

async function ensureChannel(name) {
  let n;
  try { n = P.normaliseChannelName(name); } catch (e) { n = S.defaultChannel; }
  let c = S.channels.find((x) => x.name === n);
  if (!c) {
    c = { name: n, id: P.toHex(P.channelId(n)) };
    S.channels.push(c);
    await db.set('channels', S.channels);
  }
  return c;
}

async function openConversation(conv) {
  const view = { conv, msgs: [], ready: false };
  S.view = view;
  // Busy while the history loads: a screen reader waits, and so can a
  // test (the form moves down as the history arrives above it).
  const list = h('ol', { class: 'msgs', 'aria-live': 'polite', 'aria-label': t('messages'), 'aria-busy': 'true' });
  const more = h('button', { type: 'button', class: 'more', onclick: () => earlier(view, more) }, t('earlier'));
  const box = h('textarea', { id: 'compose', dir: 'auto', rows: 2, 'aria-label': t('write'), placeholder: t('write') });
  const size = h('p', { class: 'size', id: 'size', 'aria-live': 'polite' });
  const sendBtn = h('button', { type: 'submit', class: 'send' }, t('send'));
  const alertBtn = h('button', { type: 'button', class: 'alert-btn', onclick: () => confirmAlert(conv, box) }, t('alert'));
  box.addEventListener('input', () => sizeHint(conv, box, size));
  const form = h('form', {
    class: 'compose',
    onsubmit: (ev) => {
      ev.preventDefault();
      const body = box.value.trim();
      if (!body) return;
      if (P.utf8(body).length > textLimit(conv)) { sizeHint(conv, box, size); return; }
      box.value = ''; // at once: what is typed next is the next message
      sizeHint(conv, box, size);
      send(conv, body, false).catch((e) => { box.value = body; size.textContent = e.message; });
    },
  }, box, h('div', { class: 'row' }, alertBtn, sendBtn), size);
  const extra = conv[0] === 't' ? h('button', { type: 'button', class: 'link', onclick: () => showInvite(S.teams.find((x) => 't:' + x.id === conv)) }, t('invite'))
    : conv[0] === 'd' ? keyChangeNotes(conv.slice(2)) : null;
  screen(convTitle(conv), true, extra, more, list, form);
  let msgs = await db.conversation(conv, Infinity, PAGE);
  if (msgs.length < PAGE) {
    // A conversation new to this phone: the node's history first.
    await history(conv, null).catch(() => false);
    msgs = await db.conversation(conv, Infinity, PAGE);
  }
  if (S.view !== view) return;
  for (const m of msgs) showMessage(m, true);
  view.ready = true;
  list.removeAttribute('aria-busy');
  // What was stored while this loaded: the newest page again.
  for (const m of await db.conversation(conv, Infinity, PAGE)) showMessage(m, true);
  if (view.msgs.length < PAGE && S.online) more.replaceWith(h('p', { class: 'first' }, t('beginning')));
  markRead(conv);
}

// keyChangeNotes says, in a direct conversation with key, which old keys
// it continues (and on whose word), and offers the changes of key that
// wait for the person's yes: a vouched one shows who vouched, by name
// and fingerprint, since anyone can take any name.
function keyChangeNotes(key) {
  const who = (k) => personName(k) + ' · ' + fingerprint(k).slice(0, 9);
  const notes = [];
  for (const c of S.kc) {
    if (c.merged && c.new === key) {
      notes.push(h('p', { class: 'notice kc', text: c.voucher ? t('kc_followed_vouched', { old: fingerprint(c.old), who: who(c.voucher) }) : t('kc_followed', { old: fingerprint(c.old) }) }));
    } else if (!c.merged && c.old === key) {
      notes.push(h('div', { class: 'notice kc pending' },
        h('p', { text: c.voucher ? t('kc_vouched', { who: who(c.voucher), new: fingerprint(c.new) }) : t('kc_other', { new: fingerprint(c.new) }) }),
        h('button', {
          type: 'button',
          class: 'kc-accept',
          onclick: async () => { await followKey(c); route(); renderBadges(); },
        }, t('kc_accept'))));
    }
  }
  return notes;
}

async function earlier(view, more) {
  // One page at a time: a second press while this one loads would page
  // from the same oldest message, find it all shown, and end too soon.
  if (more.disabled) return;
  more.disabled = true;
  try {
    await earlierPage(view, more);
  } finally {
    more.disabled = false;
  }
}

async function earlierPage(view, more) {
  const oldest = view.msgs[0];
  // The node's page before the oldest shown first, when it answers: what
  // the phone holds may have gaps (a backlog still arriving), and once
  // this is ingested the phone's own page is whole.
  let got = false;
  if (S.online) got = await history(view.conv, oldest).catch((e) => { console.warn('history: ' + e.message); return false; });
  // Older than the oldest shown, or as old: those of its millisecond that
  // are shown already are dropped, so ask for as many more.
  const before = oldest ? oldest.created : Infinity;
  const same = view.msgs.filter((m) => m.created === before).length;
  const msgs = (await db.conversation(view.conv, before, PAGE + same)).filter((m) => !view.msgs.some((x) => x.id === m.id));
  if (msgs.length === 0 && (got || S.online)) {
    more.replaceWith(h('p', { class: 'first' }, t('beginning')));
    return;
  }
  for (const m of msgs) showMessage(m, true);
}

function sizeHint(conv, box, out) {
  const n = P.utf8(box.value).length;
  if (n === 0) { out.textContent = ''; return; }
  // Never cut silently: over the limit the hint says so, and sending is
  // refused with the same words.
  const max = textLimit(conv);
  if (n > max) {
    out.textContent = t('too_long', { n, max });
    out.className = 'size bad';
    return;
  }
  const total = n + overhead(conv);
  const f = frames(total);
  out.textContent = f === 1 ? t('one_frame', { n }) : t('frames', { n, f });
  out.className = f === 1 ? 'size' : 'size warn';
}

function confirmAlert(conv, box) {
  const body = box.value.trim();
  const dlg = h('div', { class: 'dialog', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t' },
    h('h2', { id: 'dlg-t', text: t('alert_confirm_title') }),
    h('p', { text: body ? t('alert_confirm', { where: convTitle(conv) }) : t('alert_empty') }),
    body ? h('blockquote', { dir: 'auto', text: body }) : null,
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => dlg.remove() }, t('cancel')),
      body ? h('button', {
        type: 'button',
        class: 'alert-btn',
        id: 'alert-send',
        onclick: () => { dlg.remove(); send(conv, body, true).then(() => { box.value = ''; }); },
      }, t('alert_send')) : null));
  document.body.append(dlg);
  dlg.querySelector('button').focus();
}

const stateText = (m) => {
  if (m.state === 'refused') return t('state_refused', { why: m.err || '' });
  return t('state_' + m.state);
};

// showMessage puts m in the open conversation, in created order. What
// arrives while the conversation loads, or is older than the page shown
// (the backlog of a first visit), is not added unless asked (paged): the
// load ends by reading the newest page again, and older ones come when the
// person pages back.
function showMessage(m, paged) {
  const view = S.view;
  if (!view || view.conv !== m.conv || view.msgs.some((x) => x.id === m.id)) return;
  if (!paged && (!view.ready || (view.msgs.length >= PAGE && m.created < view.msgs[0].created))) return;
  const list = $('ol.msgs');
  // In (created, id) order, as the node lists them.
  let i = view.msgs.length;
  const after = (x) => x.created > m.created || (x.created === m.created && x.id > m.id);
  while (i > 0 && after(view.msgs[i - 1])) i--;
  view.msgs.splice(i, 0, m);
  const alert = m.kind === P.Kind.alert || m.prio === P.Priority.alert;
  const li = h('li', { class: 'msg' + (m.mine ? ' mine' : '') + (alert ? ' alert' : ''), id: 'm-' + m.id, 'data-id': m.id },
    h('p', { class: 'meta' },
      h('bdi', { class: 'who', text: personName(m.author) }), ' ',
      m.mine ? null : h('bdi', { class: 'fp', text: fingerprint(m.author) }), ' ',
      h('bdi', {}, h('time', { text: fmtTime(m.created) }))),
    alert ? h('p', { class: 'tag', text: t('alert') }) : null,
    h('p', { class: 'body', dir: m.text ? 'auto' : null, text: m.text || t('sealed') }),
    m.mine && m.state ? h('p', { class: 'state', 'data-state': m.state, text: stateText(m) }) : null);
  const next = list.children[i];
  list.insertBefore(li, next || null);
  if (!next) li.scrollIntoView({ block: 'end' });
  if (!m.mine) markRead(m.conv);
}

function updateState(m) {
  const el = document.getElementById('m-' + m.id);
  if (!el) return;
  const st = el.querySelector('.state');
  if (st) { st.dataset.state = m.state; st.textContent = stateText(m); }
  if (S.view) {
    const v = S.view.msgs.find((x) => x.id === m.id);
    if (v) v.state = m.state;
  }
}

function markRead(conv) {
  const newest = S.view && S.view.conv === conv && S.view.msgs.length ? S.view.msgs[S.view.msgs.length - 1].created : 0;
  if (newest > (S.lastRead[conv] || 0)) {
    S.lastRead[conv] = newest;
    db.set('lastRead', S.lastRead);
  }
}

// joined reports whether conv is one of the person's: a channel they
// joined, a team they are in, a direct conversation. Others' team
// messages and unjoined channels are only carried.
function joined(conv) {
  const [kind, id] = conv.split(':');
  if (kind === 'c') return S.channels.some((c) => c.id === id);
  if (kind === 't') return S.teams.some((x) => x.id === id);
  return kind === 'd';
}

async function unreadCounts() {
  const n = {};
  for (const m of await db.all()) {
    if (m.conv && !m.mine && joined(m.conv) && m.created > (S.lastRead[m.conv] || 0)) n[m.conv] = (n[m.conv] || 0) + 1;
  }
  return n;
}

let badgeTimer = null;
function renderBadges() {
  clearTimeout(badgeTimer);
  badgeTimer = setTimeout(async () => {
    const n = await unreadCounts();
    let total = 0;
    for (const k in n) total += n[k];
    const b = $('#unread');
    b.textContent = total ? String(total) : '';
    b.hidden = !total;
    if (location.hash === '#/chats') renderChats(true);
  }, 200);
}

// renderChats draws the chats screen. With refresh, when the screen is
// already up, only its three lists are drawn again (new messages, unread
// counts): the forms keep what the person is typing, and their focus.
async function renderChats(refresh) {
  const n = await unreadCounts();
  const dms = new Set();
  for (const m of await db.all()) if (m.conv[0] === 'd') dms.add(m.conv);
  // The person may have moved on while IndexedDB answered: drawing now
  // would replace the screen they went to.
  if (location.hash !== '#/chats') return;
  const item = (conv, href) => h('li', {},
    h('a', { href }, h('bdi', { text: convTitle(conv) }),
      n[conv] ? h('span', { class: 'badge', 'aria-label': tn('unread', n[conv]), text: String(n[conv]) }) : null,
      S.kc.some((c) => !c.merged && 'd:' + c.old === conv) ? h('span', { class: 'kc-mark', text: t('kc_check') }) : null));
  const lists = {
    'chats-channels': S.channels.map((c) => item('c:' + c.id, '#/c/' + encodeURIComponent(c.name))),
    'chats-teams': S.teams.map((x) => item('t:' + x.id, '#/t/' + x.id)),
    'chats-dms': [...dms].map((c) => item(c, '#/d/' + c.slice(2))),
  };
  if (refresh && $('#chats-channels')) {
    for (const id in lists) replace($('#' + id), lists[id]);
    return;
  }
  const join = h('input', { id: 'join-name', 'aria-label': t('channel_name'), placeholder: t('channel_name'), autocapitalize: 'none' });
  const dmKey = h('input', { id: 'dm-key', 'aria-label': t('dm_key'), placeholder: t('dm_key'), autocapitalize: 'none' });
  const teamName = h('input', { id: 'team-name', 'aria-label': t('team_name'), placeholder: t('team_name') });
  const err = h('p', { class: 'err', role: 'alert' });
  screen(t('chats'), false,
    h('h2', { text: t('channels') }),
    h('ul', { class: 'list', id: 'chats-channels' }, lists['chats-channels']),
    h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); if (join.value.trim()) location.hash = '#/c/' + encodeURIComponent(join.value.trim()); } },
      join, h('button', { type: 'submit' }, t('join'))),
    h('h2', { text: t('teams') }),
    h('ul', { class: 'list', id: 'chats-teams' }, lists['chats-teams']),
    h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); newTeam(teamName.value.trim()); } },
      teamName, h('button', { type: 'submit' }, t('team_new'))),
    h('h2', { text: t('direct') }),
    h('ul', { class: 'list', id: 'chats-dms' }, lists['chats-dms']),
    h('form', {
      class: 'inline',
      onsubmit: (ev) => {
        ev.preventDefault();
        const k = dmKey.value.replace(/\s+/g, '').toLowerCase();
        if (!/^[0-9a-f]{64}$/.test(k)) { err.textContent = t('bad_key'); return; }
        location.hash = '#/d/' + k;
      },
    }, dmKey, h('button', { type: 'submit' }, t('write_to'))),
    err);
}

function renderPeople() {
  const people = [...S.people.values()].filter((p) => p.key !== S.meHex).sort((a, b) => a.name.localeCompare(b.name));
  screen(t('people'), false,
    h('p', { class: 'me' }, t('you_are', { name: S.settings.name || t('person_unnamed') }), ' ', h('code', { text: fingerprint(myHex()) })),
    people.length ? null : h('p', { text: t('people_none') }),
    h('ul', { class: 'list people' }, people.map((p) => h('li', {},
      h('a', { href: '#/d/' + p.key, 'aria-label': t('write_to_person', { name: p.name }) },
        h('bdi', { class: 'who', text: p.name }), ' ', h('code', { class: 'fp', text: fingerprint(p.key) }),
        p.status ? h('span', { class: 'status', dir: 'auto', text: p.status }) : null)))));
}

async function renderStatus() {
  // Fresh, or nothing: details hours old would mislead.
  const st = await api('status').then((r) => r.json(), () => null);
  if (st) S.skew = st.time - Date.now();
  if (location.hash !== '#/status') return;
  const rows = [];
  const row = (k, v) => rows.push(h('dt', { text: k }), h('dd', { text: v }));
  row(t('status_node'), st ? t('status_reachable') : t('status_unreachable'));
  if (st) {
    const sum = st.summary || {};
    row(t('status_peers'), tn('peers', sum.peers || 0));
    const radios = sum.radios || [];
    row(t('status_radio'), radios.length ? radios.map((r) => t('radio_' + r)).join(', ') : t('radio_none'));
    const up = sum.uplink || 'none';
    row(t('status_internet'), t('uplink_' + up, { since: sum.uplink_since ? fmtTime(sum.uplink_since) : '?' }));
    row(t('status_messages'), String(st.messages));
    row(t('status_clock'), fmtTime(st.time) + (st.clock ? ' · ' + t('clock_from_' + st.clock.source) : ''));
    if (Math.abs(S.skew) > 5 * 60e3) row(t('status_phone_clock'), t('clock_off', { phone: fmtTime(Date.now()) }));
  }
  if (st && st.name) {
    // Which kit this is, in whatever script its operator wrote it.
    rows.unshift(h('dt', { text: t('status_kit_name') }), h('dd', { id: 'kit-name-shown' }, h('bdi', { text: kitName(st) })));
  }
  const dl = h('dl', { class: 'status' }, rows);
  screen(t('status'), false, dl);
  if (S.online) {
    try {
      // The node lists outages a page at a time: the first page's count,
      // and "+" when more remain, says enough on a phone.
      const r = await api('outages?limit=100');
      const outages = await r.json();
      const more = r.headers.get('Lifeline-More') === 'true';
      if (location.hash === '#/status') dl.append(h('dt', { text: t('status_outages') }), h('dd', { id: 'outages', text: outages.length + (more ? '+' : '') }));
    } catch (e) { /* shown without */ }
  }
}

function renderSettings() {
  const name = h('input', { id: 'name', value: S.settings.name || '', maxlength: 64, autocomplete: 'nickname' });
  const status = h('input', { id: 'status-line', value: S.settings.status || '', maxlength: 140 });
  const lang = h('select', { id: 'lang', onchange: async () => { S.settings.lang = lang.value; await db.set('settings', S.settings); await i18n.use(lang.value); translateStatic(); route(); } },
    h('option', { value: document.documentElement.lang }, document.documentElement.lang));
  i18n.list().then((ls) => replace(lang, ls.map((l) => h('option', { value: l.code, selected: l.code === document.documentElement.lang }, l.name))));
  const saved = h('p', { role: 'status', class: 'saved' });
  const backup = h('div', { class: 'backup' });
  // Backups are Latin letters: left to right in any language.
  const restore = h('textarea', { id: 'restore', dir: 'ltr', rows: 3, 'aria-label': t('restore_text'), placeholder: 'llk1-…', autocapitalize: 'none' });
  const restoreErr = h('p', { class: 'err', role: 'alert' });
  screen(t('settings'), false,
    h('form', {
      class: 'stack',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const p = { name: name.value.trim(), status: status.value.trim() };
          const raw = P.newProfile(me(), p, now(), PROFILE_TTL);
          S.settings.name = p.name;
          S.settings.status = p.status;
          await db.set('settings', S.settings);
          await queue(raw, {});
          await profile(P.decode(raw), S.meHex);
          flush();
          saved.textContent = t('saved');
        } catch (e) {
          saved.textContent = e.message;
        }
      },
    },
    h('label', { for: 'name', text: t('your_name') }), name,
    h('label', { for: 'status-line', text: t('your_status') }), status,
    h('button', { type: 'submit' }, t('save')), saved),
    h('label', { for: 'lang', text: t('language') }), lang,
    h('h2', { text: t('key_backup') }),
    h('p', { text: t('key_backup_why') }),
    h('button', {
      type: 'button',
      id: 'show-backup',
      onclick: () => {
        const text = P.backupText(S.seed);
        replace(backup, h('p', { class: 'warn', text: t('key_backup_warn') }), h('code', { id: 'backup-text', class: 'key', text }), qrImage(text, t('key_backup')));
      },
    }, t('key_backup_show')),
    backup,
    h('h2', { text: t('restore') }),
    h('p', { text: t('restore_why') }),
    restore,
    scanButton(restore),
    h('button', {
      type: 'button',
      id: 'restore-btn',
      onclick: async () => {
        let seed;
        try { seed = P.parseBackup(restore.value); } catch (e) { restoreErr.textContent = t('restore_bad'); console.warn(e.message); return; }
        if (!confirm(t('restore_confirm'))) return;
        // What this phone holds was read with the old key: start afresh,
        // keeping the language, and fetch the restored key's messages.
        const lang = S.settings.lang;
        if (S.es) S.es.close(); // nothing more is stored under the old key
        S.es = null;
        const outbox = await db.byState('queued'); // signed already: still to send
        await db.reset();
        for (const m of outbox) await db.putMsg(m);
        await db.set('seed', seed);
        await db.set('pub', P.identityFromSeed(seed).publicKey);
        if (lang) await db.set('settings', { lang });
        location.reload();
      },
    }, t('restore')),
    // The other way: this phone keeps its new key, and the old key (its
    // backup) signs that the new one replaces it; the new key signs the
    // envelope. People who wrote to the old key follow at once.
    h('button', {
      type: 'button',
      id: 'kc-publish',
      onclick: async () => {
        let old;
        try { old = P.identityFromSeed(P.parseBackup(restore.value)); } catch (e) { restoreErr.textContent = t('restore_bad'); return; }
        if (P.toHex(old.publicKey) === myHex()) { restoreErr.textContent = t('kc_same'); return; }
        if (!confirm(t('kc_confirm'))) return;
        await queue(P.newKeyChange(me(), old, now(), KEY_CHANGE_TTL), {});
        flush();
        restore.value = '';
        restoreErr.textContent = t('kc_published');
      },
    }, t('kc_publish')),
    restoreErr,
    h('p', { class: 'me' }, t('your_key'), ' ', h('code', { class: 'key', id: 'my-key', text: myHex() })),
    operatorSection());
}

// ---- the kit's operator ----------------------------------------------------------------

const adminToken = () => sessionStorage.getItem(ADMIN) || '';
// asOperator signs a call to the node's API (path under /api/v1/) as its
// operator: a proof that the tab holds the admin token, bound to the
// request and the node's time, so the token never crosses the Wi-Fi.
const asOperator = (path, opts, tok = adminToken()) => {
  if (!tok) return opts;
  const body = typeof opts.body === 'string' ? P.utf8(opts.body) : new Uint8Array(0);
  const auth = P.operatorHeader(tok, opts.method || 'GET', '/api/v1/' + path, Date.now() + (S.skew || 0), body);
  opts.headers = Object.assign({ Authorization: auth }, opts.headers);
  return opts;
};

// operatorSection is the operator's part of the settings, shown only when
// the node says this client is its operator: on the node's own machine, or
// with the admin token entered at #/operator (not linked: people on the
// Wi-Fi have no use for it).
function operatorSection() {
  if (!(S.node && S.node.operator) && !adminToken()) return null;
  const confirmBox = h('input', { id: 'wipe-confirm', 'aria-label': t('op_wipe_type', { phrase: t('op_wipe_phrase') }), autocapitalize: 'none', autocomplete: 'off' });
  const out = h('p', { id: 'wipe-result', role: 'status' });
  return h('section', { id: 'operator', class: 'stack' },
    h('h2', { text: t('op_title') }),
    h('h3', { text: t('op_kit_title') }),
    kitSettings(),
    h('h3', { text: t('op_wipe') }),
    h('p', { text: t('op_wipe_why') }),
    h('label', { for: 'wipe-confirm', text: t('op_wipe_type', { phrase: t('op_wipe_phrase') }) }), confirmBox,
    h('button', {
      type: 'button',
      id: 'wipe-btn',
      class: 'alert-btn',
      onclick: async () => {
        // Typed, in the person's language: a slip of the finger must not
        // destroy the kit. The node wants its own phrase, in English.
        if (confirmBox.value.trim().toLowerCase() !== t('op_wipe_phrase').toLowerCase()) {
          out.textContent = t('op_wipe_type', { phrase: t('op_wipe_phrase') });
          return;
        }
        try {
          const r = await (await api('wipe', asOperator('wipe', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ confirm: 'wipe this kit' }) }))).json();
          out.textContent = t('op_wiped', { s: r.took_s.toFixed(2) });
        } catch (e) {
          out.textContent = t('op_wipe_failed', { why: e.message });
        }
      },
    }, t('op_wipe')),
    out);
}

// kitName is the node's name as shown: the node refuses invisible
// characters in it, and the page strips them again, as from people's names.
const kitName = (st) => String((st && st.name) || '').replace(BIDI, '');

// showKitName puts the kit's name in the tab's title: which kit this is.
function showKitName(st) {
  document.title = kitName(st) ? kitName(st) + ' · Lifeline' : 'Lifeline';
}

// SETTINGS are the settings on the kit settings form, by their API names.
const SETTINGS = ['name', 'radio_region', 'radio_preset', 'hubs', 'mesh_key', 'kit'];

// kitSettings is the operator's form for the kit's settings (GET and PUT
// /api/v1/settings): filled once the node has answered. Saving restarts
// the node, which the form waits for.
function kitSettings() {
  const box = h('div', { id: 'kit-settings', class: 'stack', 'aria-busy': 'true' }, h('p', { class: 'notice', text: '…' }));
  api('settings', asOperator('settings', {})).then((r) => r.json())
    .then((v) => fillKitSettings(box, v))
    .catch((e) => replace(box, h('p', { class: 'err', role: 'alert', text: t('op_kit_failed', { why: e.message }) })));
  return box;
}

function fillKitSettings(box, v) {
  const fixed = (k) => (v.command_line || []).indexOf(k) >= 0;
  // A setting the node's command line fixes is shown, not changed.
  const field = (k, el, note = true) => {
    if (!fixed(k)) return el;
    el.disabled = true;
    el.setAttribute('aria-describedby', 'fixed-' + k);
    return note ? [el, h('p', { class: 'notice', id: 'fixed-' + k, text: t('op_kit_fixed') })] : el;
  };
  const options = (list, cur) => list.map((x) => h('option', { value: x, selected: x === cur }, x));
  const name = h('input', { id: 'kit-name', dir: 'auto', maxlength: 64, autocomplete: 'off', value: v.name || '' });
  const region = h('select', { id: 'kit-region' }, options(v.choices.regions, v.radio_region));
  const preset = h('select', { id: 'kit-preset' }, options(v.choices.presets, v.radio_preset));
  // Addresses and keys are Latin letters: left to right in any language.
  const hubs = h('textarea', { id: 'kit-hubs', dir: 'ltr', rows: 3, autocapitalize: 'none', spellcheck: 'false' });
  hubs.value = (v.hubs || []).join('\n');
  const mk = v.mesh_key || {};
  const keyState = h('p', { id: 'kit-meshkey-state' }, mk.set ? [t('op_kit_meshkey_set'), ' ', h('code', { text: mk.fingerprint || '' })] : t('op_kit_meshkey_none'));
  const keyText = h('textarea', { id: 'kit-meshkey-text', dir: 'ltr', rows: 3, autocapitalize: 'none', spellcheck: 'false', placeholder: '/key/swarm/psk/1.0.0/', 'aria-label': t('op_kit_meshkey_text') });
  keyText.hidden = true;
  const keyAction = h('select', { id: 'kit-meshkey', onchange: () => { keyText.hidden = keyAction.value !== 'paste'; } },
    h('option', { value: '' }, t('op_kit_meshkey_keep')),
    h('option', { value: 'generate' }, t('op_kit_meshkey_new')),
    h('option', { value: 'paste' }, t('op_kit_meshkey_paste')),
    mk.set ? h('option', { value: 'off' }, t('op_kit_meshkey_off')) : null);
  const kit = v.kit || {};
  const kitOn = h('input', { id: 'kit-on', type: 'checkbox', checked: !!kit.on });
  const kitAddr = h('input', { id: 'kit-address', dir: 'ltr', autocapitalize: 'none', autocomplete: 'off', placeholder: 'wlan0', value: kit.address || '' });
  const out = h('p', { id: 'kit-result', role: 'status', 'aria-live': 'polite' });
  if (v.last_error) out.textContent = t('op_kit_undone', { why: v.last_error });
  const form = h('form', {
    class: 'stack',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const ch = {};
      const hubList = hubs.value.split('\n').map((x) => x.trim()).filter((x) => x);
      if (name.value.trim() !== (v.name || '')) ch.name = name.value.trim();
      if (region.value !== v.radio_region) ch.radio_region = region.value;
      if (preset.value !== v.radio_preset) ch.radio_preset = preset.value;
      if (hubList.join('\n') !== (v.hubs || []).join('\n')) ch.hubs = hubList;
      if (keyAction.value === 'generate') ch.mesh_key = { generate: true };
      if (keyAction.value === 'off') ch.mesh_key = { off: true };
      if (keyAction.value === 'paste') ch.mesh_key = { key: keyText.value.trim() };
      if (kitOn.checked !== !!kit.on || (kitOn.checked && kitAddr.value.trim() !== (kit.address || ''))) {
        ch.kit = { on: kitOn.checked, address: kitOn.checked ? kitAddr.value.trim() : '', name: kit.name || '' };
      }
      for (const k of SETTINGS) if (fixed(k)) delete ch[k];
      if (!Object.keys(ch).length) { out.textContent = t('op_kit_nothing'); return; }
      const body = JSON.stringify(ch);
      let want;
      try {
        want = await (await api('settings', asOperator('settings', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body }))).json();
      } catch (e) {
        out.textContent = t('op_kit_failed', { why: e.message });
        return;
      }
      keyText.value = ''; // the key stays on the kit
      out.textContent = t('op_kit_applying');
      form.setAttribute('aria-busy', 'true');
      const got = await kitRestarted(want);
      form.removeAttribute('aria-busy');
      if (!got) { out.textContent = t('op_kit_applying'); return; }
      fillKitSettings(box, got);
      const res = $('#kit-result');
      if (res && !got.last_error) res.textContent = t('op_kit_applied');
      // The node's status again: its name.
      api('status').then((r) => r.json()).then((st) => { S.node = st; showKitName(st); }, () => null);
    },
  },
  h('p', { text: t('op_kit_why') }),
  h('label', { for: 'kit-name', text: t('op_kit_name') }), field('name', name),
  h('label', { for: 'kit-region', text: t('op_kit_region') }), field('radio_region', region),
  h('label', { for: 'kit-preset', text: t('op_kit_preset') }), field('radio_preset', preset),
  h('label', { for: 'kit-hubs', text: t('op_kit_hubs') }), field('hubs', hubs),
  h('label', { for: 'kit-meshkey', text: t('op_kit_meshkey') }), keyState, field('mesh_key', keyAction), keyText,
  h('label', { class: 'check', for: 'kit-on' }, field('kit', kitOn, false), ' ', t('op_kit_mode')),
  h('label', { for: 'kit-address', text: t('op_kit_address') }), field('kit', kitAddr),
  h('button', { type: 'submit', id: 'kit-save' }, t('op_kit_save')),
  out);
  box.removeAttribute('aria-busy');
  replace(box, form);
}

// kitRestarted waits, up to a minute, for the node to run with the
// settings in want (the answer to the change), or to say it undid them;
// it returns the settings then, null if the node did not come back.
async function kitRestarted(want) {
  const same = (a, b) => a.name === b.name && a.radio_region === b.radio_region && a.radio_preset === b.radio_preset &&
    (a.hubs || []).join() === (b.hubs || []).join() && !!a.mesh_key.set === !!b.mesh_key.set &&
    (a.mesh_key.fingerprint || '') === (b.mesh_key.fingerprint || '') && !!a.kit.on === !!b.kit.on;
  for (let end = Date.now() + 60e3; Date.now() < end;) {
    await new Promise((ok) => setTimeout(ok, 500));
    try {
      const v = await (await api('settings', asOperator('settings', {}))).json();
      if (same(v, want) || v.last_error) return v;
    } catch (e) { /* restarting */ }
  }
  return null;
}

// renderOperatorSignIn takes the admin token, checks it with the node, and
// keeps it for this tab only.
function renderOperatorSignIn() {
  const tok = h('input', { id: 'admin-token', dir: 'ltr', type: 'password', autocomplete: 'off', 'aria-label': t('op_token') });
  const err = h('p', { class: 'err', role: 'alert' });
  screen(t('op_title'), true, h('form', {
    class: 'stack',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const st = await api('status', asOperator('status', {}, tok.value.trim())).then((r) => r.json(), () => null);
      if (!st || !st.operator) { err.textContent = t('op_token_bad'); return; }
      sessionStorage.setItem(ADMIN, tok.value.trim());
      location.hash = '#/settings';
    },
  }, h('label', { for: 'admin-token', text: t('op_token') }), tok, h('button', { type: 'submit' }, t('op_sign_in')), err));
}

function qrImage(text, label) {
  const img = h('img', { class: 'qr', alt: label, src: 'data:image/svg+xml,' + encodeURIComponent(qrSVG(text)) });
  return img;
}

// scanButton reads a QR code from a photo where the browser can
// (BarcodeDetector; no camera stream is needed). Elsewhere people type.
function scanButton(into) {
  if (!('BarcodeDetector' in window)) return null;
  const file = h('input', {
    type: 'file',
    accept: 'image/*',
    capture: 'environment',
    'aria-label': t('scan'),
    onchange: async () => {
      try {
        const bmp = await createImageBitmap(file.files[0]);
        const codes = await new window.BarcodeDetector({ formats: ['qr_code'] }).detect(bmp);
        if (codes.length) into.value = codes[0].rawValue;
      } catch (e) { /* type it instead */ }
    },
  });
  return h('label', { class: 'scan' }, t('scan'), file);
}

// ---- teams ------------------------------------------------------------------------

function teamFrom(name, secret) {
  const tm = P.team(secret);
  return { name, secret: P.toBase64url(secret), id: P.toHex(tm.id), t: tm };
}

async function saveTeams() {
  await db.set('teams', S.teams.map((x) => ({ name: x.name, secret: x.secret })));
}

async function newTeam(name) {
  if (!name) return;
  const tm = teamFrom(name, P.random(32));
  S.teams.push(tm);
  await saveTeams();
  location.hash = '#/t/' + tm.id;
  showInvite(tm);
}

function inviteLink(tm) {
  return location.origin + '/#team=' + tm.secret + '&name=' + encodeURIComponent(tm.name);
}

function showInvite(tm) {
  const link = inviteLink(tm);
  const dlg = h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'inv-t' },
    h('h2', { id: 'inv-t', text: t('invite_title', { name: tm.name }) }),
    h('p', { text: t('invite_why') }),
    qrImage(link, t('invite_title', { name: tm.name })),
    h('code', { class: 'key', id: 'invite-link', text: link }),
    h('button', { type: 'button', onclick: () => dlg.remove() }, t('close')));
  document.body.append(dlg);
}

async function joinTeamFromLink(frag) {
  const params = new URLSearchParams(frag);
  let tm;
  try {
    tm = teamFrom((params.get('name') || t('team')).slice(0, 64), P.fromBase64url(params.get('team') || ''));
  } catch (e) {
    location.replace('#/chats');
    return;
  }
  if (!S.teams.some((x) => x.id === tm.id)) {
    S.teams.push(tm);
    await saveTeams();
    // Messages the phone already holds for this team can now be read.
    for (const m of await db.all()) {
      if (m.conv === 't:' + tm.id && !m.text) {
        m.text = tryText(() => P.openTeam(tm.t, m.raw));
        await db.putMsg(m);
      }
    }
  }
  location.replace('#/t/' + tm.id);
}

// ---- start --------------------------------------------------------------------------

// translateStatic puts the catalogue's strings into index.html's own
// elements (the tabs, the back button).
function translateStatic() {
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', t(el.dataset.tLabel));
}

async function start() {
  // What the phone holds, all at once; the node's status meanwhile.
  // The node's status and the browser's language load while IndexedDB
  // opens: on a first visit that is a slow phone's longest wait.
  const statusP = api('status').then((r) => r.json(), () => null);
  const langP = i18n.load();
  const [seed0, pub, settings, channels, lastRead, defaultChannel, teams, corr, kc, people] = await Promise.all(
    ['seed', 'pub', 'settings', 'channels', 'lastRead', 'defaultChannel', 'teams', 'corr', 'kc'].map((k) => db.get(k)).concat([db.people()]));
  S.seed = seed0;
  if (!S.seed) {
    // A first visit: a new key. Nothing is written to it or by it yet,
    // so its public key can wait until the channel is on the screen.
    S.seed = P.random(32);
    await db.set('seed', S.seed);
  } else if (pub) {
    S.me = Object.freeze({ seed: S.seed, publicKey: pub });
    S.meHex = P.toHex(pub);
  } else {
    me();
  }
  S.settings = settings || {};
  S.channels = channels || [];
  S.lastRead = lastRead || {};
  S.defaultChannel = defaultChannel || 'general';
  for (const x of teams || []) S.teams.push(teamFrom(x.name, P.fromBase64url(x.secret)));
  for (const p of people) S.people.set(p.key, p);
  S.kc = kc || [];
  if (corr) {
    for (const k of corr) S.corr.add(k);
  } else if (S.meHex) {
    // Kept since the page learnt whom to acknowledge: found once in the
    // history this phone holds.
    for (const m of await db.all()) if (m.mine && m.kind === P.Kind.direct && m.conv[0] === 'd') S.corr.add(m.conv.slice(2));
    await db.set('corr', [...S.corr]);
  }
  // The node says which channel a first-time visitor lands in (offline,
  // the last one it said); the language loads meanwhile.
  let drawn;
  const first = new Promise((resolve) => { drawn = resolve; });
  const lang = await langP;
  await Promise.all([S.settings.lang && S.settings.lang !== lang ? i18n.load(S.settings.lang) : null, connect(statusP, first)]);
  translateStatic();
  $('#back').addEventListener('click', () => { location.hash = '#/chats'; });
  window.addEventListener('hashchange', route);
  await route();
  document.body.classList.add('ready');
  performance.mark('lifeline-ready'); // time to interactive, for make bench
  drawn();
  me();
  renderBadges();
  poll();
  db.evict();
  setInterval(() => db.evict(), 60000);
}

start().catch((e) => {
  document.getElementById('main').textContent = 'Lifeline: ' + e.message;
  throw e;
});
