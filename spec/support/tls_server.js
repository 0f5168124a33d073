// A TLS server for the specs (spec/support/tls.lua starts it) and the bench's TLS
// workloads (scripts/bench/run): answers like an OpenAI chat completion over
// HTTPS — or, with "upstream", forwards every request to that plain-HTTP server
// (mockllm) — HTTP/1.1 only or HTTP/2 by ALPN, and asks for a client certificate
// when told.  A plain-HTTP control port reports what
// the TLS side saw (connections, resumed sessions, protocols, client names), so
// that reading the counters does not change them.
//
//   node tls_server.js '{"cert": ..., "key": ..., "ca": ..., "h2": true,
//                        "mtls": true, "delay_ms": 50, "close": true,
//                        "upstream": "http://127.0.0.1:PORT", "port": 0}'
// prints "listening on 127.0.0.1 PORT CONTROL_PORT" once both ports are open.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const http2 = require('http2');

const opts = JSON.parse(process.argv[2] || '{}');

function fresh() {
  return {connections: 0, resumed: 0, requests: 0, alpn: {}, clients: [],
          open: 0, peak_open: 0, streams_in_flight: 0, peak_streams: 0};
}
let stats = fresh();

function answer(req, res, body) {
  stats.requests++;
  stats.streams_in_flight++;
  stats.peak_streams = Math.max(stats.peak_streams, stats.streams_in_flight);
  const send = () => {
    stats.streams_in_flight--;
    const headers = {'content-type': 'application/json'};
    if (opts.close && req.httpVersionMajor === 1) headers.connection = 'close';
    let text = 'ok';
    try { text = 'echo: ' + JSON.parse(body).messages.slice(-1)[0].content; } catch (e) { /* GET */ }
    res.writeHead(200, headers);
    res.end(JSON.stringify({
      id: 'chatcmpl-tls', object: 'chat.completion', created: 0, model: 'tls-model',
      choices: [{index: 0, message: {role: 'assistant', content: text}, finish_reason: 'stop'}],
      usage: {prompt_tokens: 3, completion_tokens: 2, total_tokens: 5},
    }));
  };
  if (opts.delay_ms) setTimeout(send, opts.delay_ms); else send();
}

function onRequest(req, res) {
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => answer(req, res, Buffer.concat(parts).toString()));
}

// Headers of one hop, which a proxy does not pass on (HTTP/2 forbids them too).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
                     'upgrade', 'host', 'te']);

function passable(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith(':') && !HOP.has(k)) out[k] = v;
  }
  return out;
}

// One upstream connection per request (agent: false), closed after it: the
// bench's server then holds no idle connection between runs.
function forward(req, res) {
  const up = new URL(opts.upstream);
  const r = http.request({host: up.hostname, port: up.port, method: req.method, path: req.url,
                          headers: passable(req.headers), agent: false}, (ur) => {
    res.writeHead(ur.statusCode, passable(ur.headers));
    ur.pipe(res);
  });
  r.on('error', () => { res.writeHead(502); res.end(); });
  req.pipe(r);
}

const handler = opts.upstream ? forward : onRequest;

const tlsOpts = {
  cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key),
  ALPNProtocols: opts.h2 ? ['h2', 'http/1.1'] : ['http/1.1'],
};
if (opts.mtls) {
  tlsOpts.ca = fs.readFileSync(opts.ca);
  tlsOpts.requestCert = true;
  tlsOpts.rejectUnauthorized = true;
}
let server;
if (opts.h2) {
  tlsOpts.allowHTTP1 = true;
  tlsOpts.settings = {maxConcurrentStreams: 1000};
  server = http2.createSecureServer(tlsOpts, handler);
} else {
  server = https.createServer(tlsOpts, handler);
}
server.on('secureConnection', (sock) => {
  stats.connections++;
  stats.open++;
  stats.peak_open = Math.max(stats.peak_open, stats.open);
  if (sock.isSessionReused()) stats.resumed++;
  const proto = sock.alpnProtocol || 'none';
  stats.alpn[proto] = (stats.alpn[proto] || 0) + 1;
  const peer = sock.getPeerCertificate();
  if (peer && peer.subject) stats.clients.push(peer.subject.CN);
  sock.on('close', () => { stats.open--; });
});
server.on('tlsClientError', () => { stats.refused = (stats.refused || 0) + 1; });

const control = http.createServer((req, res) => {
  if (req.url === '/__reset') stats = fresh();
  res.writeHead(200, {'content-type': 'application/json'});
  res.end(JSON.stringify(stats));
});

server.listen(opts.port || 0, '127.0.0.1', () => {
  control.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on 127.0.0.1 ${server.address().port} ${control.address().port}\n`);
  });
});
