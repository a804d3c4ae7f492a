// QR codes for key backups and team invites, drawn as SVG from the
// vendored encoder (uqr, see vendor/VENDOR.md). Reading one back works
// where the browser has BarcodeDetector; elsewhere people type the text.
import { encode } from './vendor/qr.js';

// qrSVG returns an SVG document of text's QR code (error correction M),
// with the quiet zone the standard asks for.
export function qrSVG(text) {
  const q = encode(text, { ecc: 'M', border: 0 });
  const n = q.size;
  let d = '';
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) if (q.data[y][x]) d += 'M' + x + ' ' + y + 'h1v1h-1z';
  }
  const s = n + 8;
  return '<svg xmlns="http://www.w3.org/2000/svg" viewBox="-4 -4 ' + s + ' ' + s + '" shape-rendering="crispEdges">' +
    '<rect x="-4" y="-4" width="' + s + '" height="' + s + '" fill="#fff"/><path d="' + d + '" fill="#000"/></svg>';
}
