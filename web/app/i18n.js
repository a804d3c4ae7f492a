// One catalogue per language in i18n/<code>.json; English is the fallback
// for any key a catalogue lacks. Adding a language is adding one file: the
// node lists the catalogues it has at i18n/index.json.

let cat = {};
let fallback = {};

// load picks the language: the one saved in settings, else the first of
// the browser's languages the node has a catalogue for, else English. It
// asks for the catalogues directly, without the list first: one round trip
// less before the page can show anything.
export async function load(saved) {
  const want = [];
  for (const l of [saved].concat(navigator.languages || [navigator.language])) {
    const base = String(l || '').toLowerCase().split('-')[0];
    if (/^[a-z]{2,3}$/.test(base) && want.indexOf(base) < 0) want.push(base);
  }
  for (const code of want) {
    if (code === 'en') break;
    try {
      return await use(code);
    } catch (e) { /* no catalogue for it: the next */ }
  }
  return use('en');
}

// use loads language code's catalogue (and English's, for what it lacks),
// or throws if the node has none for it.
export async function use(code) {
  const [c, en] = await Promise.all([
    getJSON('i18n/' + code + '.json'),
    code === 'en' ? null : getJSON('i18n/en.json').catch(() => ({})),
  ]);
  cat = c;
  fallback = en || c;
  const root = document.documentElement;
  root.lang = code;
  root.dir = cat._dir === 'rtl' ? 'rtl' : 'ltr';
  return code;
}

// list returns the languages the node has: [{code, name, dir}].
export const list = () => getJSON('i18n/index.json').catch((e) => { console.warn('languages: ' + e.message); return []; });

// t returns the string for key, with {name} placeholders filled from vars.
export function t(key, vars) {
  let s = key in cat ? cat[key] : key in fallback ? fallback[key] : key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// plural picks key + ".one" or key + ".other" by n.
export const tn = (key, n, vars) => t(key + (n === 1 ? '.one' : '.other'), Object.assign({ n }, vars));

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(url + ': ' + r.status);
  return r.json();
}
