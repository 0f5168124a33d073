// A TLS server for the specs (spec/support/tls.lua starts it): answers like an
// OpenAI chat completion over HTTPS, HTTP/1.1 only or HTTP/2 by ALPN, and asks
// for a client certificate when told.  A plain-HTTP control port reports what
// the TLS side saw (connections, resumed sessions, protocols, client names), so
// that reading the counters does not change them.
//
//   node tls_server.js '{"cert": ..., "key": ..., "ca": ..., "h2": true,
//                        "mtls": true, "delay_ms": 50, "close": true}'
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
  server = http2.createSecureServer(tlsOpts, onRequest);
} else {
  server = https.createServer(tlsOpts, onRequest);
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

server.listen(0, '127.0.0.1', () => {
  control.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on 127.0.0.1 ${server.address().port} ${control.address().port}\n`);
  });
});
