// The phone's own storage: IndexedDB, so history, the outbox and the
// person's key survive reloads and the node being out of reach.
//
// Stores:
//   kv      settings, the key, joined channels and teams, per-node cursors
//   msgs    every envelope the phone holds, by id: what it shows, and what
//           it carries to the next kit as a courier (bounded: MAX_HELD,
//           the first to reach the phone evicted first, never the
//           person's own unsent ones; by arrival, not by the author's
//           created time, which a stranger can set in the future)
//   people  the latest profile of each key

const NAME = 'lifeline';
const VERSION = 1;

// MAX_HELD bounds the envelopes kept: about 1 MB of envelopes on a phone.
export const MAX_HELD = 3000;

let dbp = null;

function open() {
  if (dbp) return dbp;
  dbp = new Promise((resolve, reject) => {
    const rq = indexedDB.open(NAME, VERSION);
    rq.onupgradeneeded = () => {
      const db = rq.result;
      db.createObjectStore('kv');
      const msgs = db.createObjectStore('msgs', { keyPath: 'id' });
      msgs.createIndex('conv', ['conv', 'created']);
      msgs.createIndex('got', 'got');
      msgs.createIndex('state', 'state');
      db.createObjectStore('people', { keyPath: 'key' });
    };
    rq.onsuccess = () => resolve(rq.result);
    rq.onerror = () => reject(rq.error);
  });
  return dbp;
}

const done = (rq) => new Promise((resolve, reject) => {
  rq.onsuccess = () => resolve(rq.result);
  rq.onerror = () => reject(rq.error);
});

async function tx(store, mode, fn) {
  const db = await open();
  const t = db.transaction(store, mode);
  fn(t.objectStore(store));
  await new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

// reset empties every store: a restored key starts afresh, and its
// messages come again from the node.
export async function reset() {
  const db = await open();
  const t = db.transaction(['kv', 'msgs', 'people'], 'readwrite');
  for (const s of ['kv', 'msgs', 'people']) t.objectStore(s).clear();
  await new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = () => reject(t.error);
  });
}

export async function get(key) {
  const db = await open();
  return done(db.transaction('kv').objectStore('kv').get(key));
}

export const set = (key, value) => tx('kv', 'readwrite', (s) => { s.put(value, key); });

export async function getMsg(id) {
  const db = await open();
  return done(db.transaction('msgs').objectStore('msgs').get(id));
}

export const putMsg = (m) => tx('msgs', 'readwrite', (s) => { s.put(m); });

// putNew stores, in one transaction, those of msgs the phone does not hold
// yet. It returns them as added, and the stored records of the others as
// existing. A message held unread (no conversation: sealed to a key or
// team this phone did not have then) that now has one is stored again,
// and counts as added.
export async function putNew(msgs) {
  const added = [];
  const existing = [];
  if (msgs.length === 0) return { added, existing };
  await tx('msgs', 'readwrite', (s) => {
    for (const m of msgs) {
      const rq = s.get(m.id);
      rq.onsuccess = () => {
        if (rq.result && !(rq.result.conv === '' && m.conv !== '')) {
          existing.push(rq.result);
        } else if (!added.some((a) => a.id === m.id)) {
          added.push(m);
          s.put(m);
        }
      };
    }
  });
  return { added, existing };
}

// conversation returns up to limit messages of conv created at or before
// `before` (Infinity: the newest), oldest first. The bound is inclusive:
// messages share milliseconds, and the caller drops those it has.
export async function conversation(conv, before, limit) {
  const db = await open();
  const idx = db.transaction('msgs').objectStore('msgs').index('conv');
  const range = IDBKeyRange.bound([conv, -Infinity], [conv, before]);
  const out = [];
  await new Promise((resolve, reject) => {
    const rq = idx.openCursor(range, 'prev');
    rq.onsuccess = () => {
      const c = rq.result;
      if (!c || out.length >= limit) return resolve();
      out.push(c.value);
      c.continue();
    };
    rq.onerror = () => reject(rq.error);
  });
  return out.reverse();
}

// byState lists the messages in a delivery state (the outbox: 'queued').
export async function byState(state) {
  const db = await open();
  return done(db.transaction('msgs').objectStore('msgs').index('state').getAll(state));
}

// all calls fn with every message (for unread counts and the courier).
export async function all() {
  const db = await open();
  return done(db.transaction('msgs').objectStore('msgs').getAll());
}

export async function people() {
  const db = await open();
  return done(db.transaction('people').objectStore('people').getAll());
}

export const putPerson = (p) => tx('people', 'readwrite', (s) => { s.put(p); });

export const deletePerson = (key) => tx('people', 'readwrite', (s) => { s.delete(key); });

// evict keeps at most MAX_HELD messages, removing those that reached the
// phone first; the person's own messages not yet on a node are kept.
export async function evict() {
  const db = await open();
  const n = await done(db.transaction('msgs').objectStore('msgs').count());
  if (n <= MAX_HELD) return 0;
  let extra = n - MAX_HELD;
  const t = db.transaction('msgs', 'readwrite');
  const rq = t.objectStore('msgs').index('got').openCursor();
  rq.onsuccess = () => {
    const c = rq.result;
    if (!c || extra <= 0) return;
    if (c.value.state !== 'queued') { c.delete(); extra--; }
    c.continue();
  };
  await new Promise((resolve) => { t.oncomplete = resolve; t.onerror = resolve; });
  return n - MAX_HELD - extra;
}
