// An independent implementation of the version 1 envelope, written from
// docs/PROTOCOL.md with Node's crypto (OpenSSL), used by interop_test.go.
// Usage: node interop.mjs <envelope hex>
// Verifies the given envelope and prints "ok <id hex>", then signs a new
// channel text message of its own and prints "made <envelope hex>".
import crypto from 'node:crypto';

const PREFIX = Buffer.from('lifeline/envelope/v1\0');

function verify(b) {
  if (b[0] !== 0x01) throw new Error('version');
  const flags = b[1];
  const kind = flags & 0x0f;
  let off = 8 + ((flags & 0x40) ? 1 : 0);
  off += (kind === 1 || kind === 5) ? 8 : 32;
  const author = b.subarray(off, off + 32);
  const signed = b.subarray(0, b.length - 64);
  const key = crypto.createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), author]),
    format: 'der', type: 'spki',
  });
  if (!crypto.verify(null, Buffer.concat([PREFIX, signed]), key, b.subarray(b.length - 64))) {
    throw new Error('bad signature');
  }
  return crypto.createHash('sha256').update(b).digest('hex');
}

function make(created, channelName, text) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const ch = crypto.createHash('sha256').update(Buffer.concat([Buffer.from('lifeline/channel/v1\0'), Buffer.from(channelName)])).digest().subarray(0, 8);
  const head = Buffer.alloc(8);
  head[0] = 0x01;
  head[1] = 0x01 | (1 << 4); // text, normal priority, no TTL byte
  head.writeUIntBE(created, 2, 6);
  const unsigned = Buffer.concat([head, ch, pub, Buffer.from(text, 'utf8')]);
  const sig = crypto.sign(null, Buffer.concat([PREFIX, unsigned]), privateKey);
  return Buffer.concat([unsigned, sig]).toString('hex');
}

const id = verify(Buffer.from(process.argv[2], 'hex'));
console.log('ok ' + id);
console.log('made ' + make(Number(process.argv[3]), 'general', 'héllo from node'));
