// The QR encoder the page draws key backups and team invites with:
// esbuild bundles this file into ../app/vendor/qr.js (make vendor-js).
export { encode } from 'uqr';
