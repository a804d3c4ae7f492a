// The two built-ins noble 2.x uses that the page's oldest browsers lack,
// defined only where missing. Chrome 67 to 70 (Android 8's WebView, Samsung
// Internet 9.2) have no globalThis, through which noble finds
// crypto.getRandomValues; nothing before Chrome 93, Safari 15.4 or
// Firefox 92 has Object.hasOwn, which noble calls while building its curves,
// so without it the whole module would fail to load. entry.js imports this
// first so that it runs before any noble module. esbuild lowers syntax, not
// library calls: build.go searches the bundle for other built-ins that are
// too new, and web/app/proto_vectors.mjs runs everything with them removed.
if (typeof globalThis !== 'object') {
  Object.defineProperty(self, 'globalThis', { value: self, writable: true, configurable: true });
}
if (typeof Object.hasOwn !== 'function') {
  // Same semantics: hasOwnProperty's ToObject(this) throws for null and
  // undefined as Object.hasOwn's ToObject(O) does.
  const has = Object.prototype.hasOwnProperty;
  Object.defineProperty(Object, 'hasOwn', {
    value: function hasOwn(o, k) { return has.call(o, k); },
    writable: true,
    configurable: true,
  });
}
