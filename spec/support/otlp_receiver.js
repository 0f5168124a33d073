// A tiny OTLP/HTTP JSON receiver for spec/otel_spec.lua: it keeps what a tracer
// posts and answers what the spec scripts.
//
//   node spec/support/otlp_receiver.js      prints "listening on 127.0.0.1 PORT"
//
//   POST /v1/traces            recorded ({headers, body} with the body parsed as JSON);
//                              answered 200 {} unless a scripted failure is pending
//   GET  /__received           every recorded post, oldest first, as a JSON list
//   GET  /__fail?status=N&times=K[&retry_after=S]
//                              the next K posts are answered N (a 429 or 5xx is one
//                              the tracer tries again) and not recorded
//   GET  /__reset              forgets the posts and the pending failures
//   POST /v1/chat/completions  an LM call: its headers recorded (GET /__lm_requests lists
//                              them), answered with a minimal chat completion, so a spec
//                              can see what a traced LM call sends (traceparent)
// Each post is counted in `attempts` (GET /__received?attempts=1 answers {attempts}).
"use strict";
const http = require("http");

let received = [];
let failures = [];   // statuses for the next posts
let retryAfter = null;
let attempts = 0;
let lmRequests = [];

function reply(res, status, obj, headers) {
  const body = JSON.stringify(obj);
  res.writeHead(status, Object.assign({"Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body)}, headers || {}));
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "POST" && url.pathname === "/v1/traces") {
      attempts += 1;
      if (failures.length > 0) {
        const status = failures.shift();
        const extra = retryAfter !== null ? {"Retry-After": String(retryAfter)} : {};
        return reply(res, status, {code: status, message: "scripted failure"}, extra);
      }
      const text = Buffer.concat(chunks).toString("utf8");
      let body;
      try {
        body = JSON.parse(text);
      } catch (e) {
        return reply(res, 400, {message: "not JSON: " + e.message});
      }
      received.push({headers: req.headers, body: body, size: text.length});
      return reply(res, 200, {});
    }
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      lmRequests.push({headers: req.headers});
      return reply(res, 200, {id: "chatcmpl-receiver", object: "chat.completion", model: "receiver",
        choices: [{index: 0, message: {role: "assistant", content: "ok"}, finish_reason: "stop"}],
        usage: {prompt_tokens: 1, completion_tokens: 1, total_tokens: 2}});
    }
    if (url.pathname === "/__lm_requests") return reply(res, 200, lmRequests);
    if (url.pathname === "/__received") {
      if (url.searchParams.get("attempts")) return reply(res, 200, {attempts: attempts});
      return reply(res, 200, received);
    }
    if (url.pathname === "/__fail") {
      const status = Number(url.searchParams.get("status") || 503);
      const times = Number(url.searchParams.get("times") || 1);
      for (let i = 0; i < times; i++) failures.push(status);
      const ra = url.searchParams.get("retry_after");
      retryAfter = ra === null ? null : Number(ra);
      return reply(res, 200, {pending: failures.length});
    }
    if (url.pathname === "/__reset") {
      received = [];
      lmRequests = [];
      failures = [];
      retryAfter = null;
      attempts = 0;
      return reply(res, 200, {});
    }
    return reply(res, 404, {message: "no such route"});
  });
});

server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  console.log("listening on 127.0.0.1 " + server.address().port);
});
process.on("SIGTERM", () => process.exit(0));
