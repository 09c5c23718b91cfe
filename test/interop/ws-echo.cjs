// Drives fleetwire's WebSocket layer (internal/wire/websocket) with the
// Node `ws` client against an echo server: permessage-deflate as ws offers
// it, small and large text, binary, a fragmented message, a ping, then a
// text frame that is not UTF-8, which the server must close with 1007.
// FLEETWIRE_WS_URL names the server. Prints one JSON line; exits non-zero
// on failure.
'use strict';

const WebSocket = require('ws');

const outcome = { extensions: null, echoes: [], pong: null, close: null };
function finish(code, why) {
  if (why) outcome.failure = why;
  process.stdout.write(JSON.stringify(outcome) + '\n');
  setTimeout(() => process.exit(code), 50);
}
setTimeout(() => finish(1, 'overall timeout'), 20000);

const large = 'fleetwire '.repeat(2000);
const sent = [
  { data: 'hello', binary: false },
  { data: large, binary: false },
  { data: Buffer.from([0, 255, 254, 1]), binary: true },
];
const ws = new WebSocket(process.env.FLEETWIRE_WS_URL, { perMessageDeflate: { threshold: 0 } });
const got = [];
ws.on('open', () => {
  outcome.extensions = ws.extensions;
  for (const m of sent) ws.send(m.data, { binary: m.binary });
  ws.send('frag', { fin: false });
  ws.send('mented', { fin: true });
  ws.ping('are you there');
});
ws.on('pong', (p) => { outcome.pong = p.toString(); });
ws.on('message', (data, isBinary) => {
  got.push({ text: isBinary ? null : data.toString(), bytes: data.length, isBinary });
  outcome.echoes.push(isBinary ? 'binary:' + data.toString('hex') : data.length > 100 ? 'text:' + data.length : 'text:' + data.toString());
  if (got.length === 4) {
    // A text frame whose bytes are not UTF-8: the server must fail the
    // connection with 1007.
    ws.send(Buffer.from([0x68, 0xc0, 0xaf]), { binary: false });
  }
});
ws.on('close', (code) => {
  outcome.close = code;
  const ok = got.length === 4 && got[1].bytes === large.length && code === 1007;
  finish(ok ? 0 : 1, ok ? undefined : 'unexpected outcome');
});
ws.on('error', (err) => { outcome.error = String(err); });
