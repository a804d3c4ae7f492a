// What Chromium added after version 67 (Android 8's oldest Chrome and
// WebView, the app's oldest target) that web code is likely to call, after
// MDN's compatibility data: a function expression that deletes it all from
// the global object g, as on such a phone, and returns what it removed.
// One list for both places the app's code is run old: the browser tests
// (browsertest.Options.OldPhone) and web/app/proto_vectors.mjs under Node.
(function (g) {
  const removed = [];
  const drop = (obj, name, label) => {
    if (obj && Object.prototype.hasOwnProperty.call(obj, name)) {
      delete obj[name];
      removed.push(label);
    }
  };
  const TA = Object.getPrototypeOf(Uint8Array.prototype);
  drop(Object, 'hasOwn', 'Object.hasOwn');
  drop(Object, 'fromEntries', 'Object.fromEntries');
  drop(Object, 'groupBy', 'Object.groupBy');
  for (const [p, n] of [[Array.prototype, 'Array'], [TA, 'TypedArray']]) {
    for (const m of ['at', 'findLast', 'findLastIndex', 'toSorted', 'toReversed', 'with']) drop(p, m, n + '.prototype.' + m);
  }
  for (const m of ['flat', 'flatMap', 'toSpliced']) drop(Array.prototype, m, 'Array.prototype.' + m);
  for (const m of ['at', 'replaceAll', 'matchAll', 'isWellFormed', 'toWellFormed']) drop(String.prototype, m, 'String.prototype.' + m);
  drop(Promise, 'any', 'Promise.any');
  drop(Promise, 'allSettled', 'Promise.allSettled');
  for (const m of ['structuredClone', 'WeakRef', 'FinalizationRegistry', 'AggregateError', 'queueMicrotask']) drop(g, m, m);
  if (typeof Element !== 'undefined') {
    for (const m of ['replaceChildren', 'toggleAttribute']) {
      drop(Element.prototype, m, 'Element.prototype.' + m);
      drop(Document.prototype, m, 'Document.prototype.' + m);
      drop(DocumentFragment.prototype, m, 'DocumentFragment.prototype.' + m);
    }
    for (const m of ['text', 'arrayBuffer', 'stream']) drop(Blob.prototype, m, 'Blob.prototype.' + m);
    drop(AbortSignal, 'timeout', 'AbortSignal.timeout');
    drop(Crypto.prototype, 'randomUUID', 'crypto.randomUUID');
  }
  drop(Intl, 'ListFormat', 'Intl.ListFormat');
  drop(Intl, 'RelativeTimeFormat', 'Intl.RelativeTimeFormat');
  drop(g, 'globalThis', 'globalThis');
  return removed;
})
