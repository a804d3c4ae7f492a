// What the page needs from the audited @noble libraries, and nothing else:
// esbuild bundles this file into ../app/vendor/noble.js (make vendor-js),
// dropping every module and top-level binding not reachable from here.
//
// shims.js defines globalThis and Object.hasOwn where the browser lacks them
// (noble needs both); imported first, it runs before any noble module.
import './shims.js';

// Ed25519 (RFC 8032): getPublicKey(seed), sign(msg, seed), verify(sig, msg,
// pub, {zip215}), utils.toMontgomery(pub), utils.toMontgomerySecret(seed),
// Point (fromBytes, isSmallOrder). X25519: getPublicKey, getSharedSecret.
export { ed25519, x25519 } from '@noble/curves/ed25519.js';
export { sha256, sha512 } from '@noble/hashes/sha2.js';
export { hkdf } from '@noble/hashes/hkdf.js';
export { randomBytes } from '@noble/hashes/utils.js';
export { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
