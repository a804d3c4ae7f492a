// Runs nostr-tools' nip77 Negentropy as the initiator, for
// interop/negentropy/nip77_test.go. Usage:
//   node nip77_initiator.mjs ITEMS_FILE FRAME_LIMIT
// ITEMS_FILE holds one "timestamp hexid" per line. The script writes its
// first message as a hex line, then for every hex line read on stdin (the
// responder's reply) writes the next message, until it writes "done", then
// "have ID..." and "need ID..." lines.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
// The nip77 subpath is not exported, so import the file itself.
import { Negentropy, NegentropyStorageVector } from './node_modules/nostr-tools/lib/esm/nip77.js';

const [itemsFile, limit] = process.argv.slice(2);
const storage = new NegentropyStorageVector();
for (const line of readFileSync(itemsFile, 'utf8').split('\n')) {
  if (!line) continue;
  const [ts, id] = line.split(' ');
  storage.insert(Number(ts), id);
}
storage.seal();
const neg = new Negentropy(storage, Number(limit));
const have = [], need = [];
console.log(neg.initiate());
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const next = neg.reconcile(line.trim(), (id) => have.push(id), (id) => need.push(id));
  if (next === null) {
    console.log('done');
    console.log('have ' + have.join(' '));
    console.log('need ' + need.join(' '));
    break;
  }
  console.log(next);
}
rl.close();
