// replay_server.js — answers every POST with a recorded provider response from a
// folder, for the specs that check tide against what real providers sent.
//
//   node spec/support/replay_server.js DIR
//
// The request's `x-replay` header names the file (openai_tool_calls.sse, ...): .sse
// files go out as text/event-stream, .json as application/json, in pieces of 7 to 61
// bytes written one after another, so a client's parser meets events and JSON cut at
// every kind of place.  GET /__last answers the last request's path and body.
// Prints "listening on 127.0.0.1 PORT" once it listens.
"use strict";
const http = require("http");
const fs = require("fs");
const path = require("path");

const dir = process.argv[2];
let last = {path: null, body: null};

function pieces(buf) {
  const out = [];
  let i = 0, size = 7;
  while (i < buf.length) {
    out.push(buf.subarray(i, i + size));
    i += size;
    size = size >= 61 ? 7 : size + 9;   // 7, 16, 25, ... 61, 7, ...
  }
  return out;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "GET" && req.url === "/__last") {
      res.writeHead(200, {"content-type": "application/json"});
      res.end(JSON.stringify(last));
      return;
    }
    last = {path: req.url, body: Buffer.concat(chunks).toString("utf8")};
    const name = req.headers["x-replay"] || "";
    const file = path.join(dir, path.basename(name));
    if (!name || !fs.existsSync(file)) {
      res.writeHead(404, {"content-type": "application/json"});
      res.end(JSON.stringify({error: {message: "no recording " + name}}));
      return;
    }
    const sse = file.endsWith(".sse");
    res.writeHead(200, {"content-type": sse ? "text/event-stream; charset=utf-8" : "application/json"});
    const parts = pieces(fs.readFileSync(file));
    const next = () => {
      if (parts.length === 0) { res.end(); return; }
      res.write(parts.shift(), next);
    };
    next();
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write("listening on 127.0.0.1 " + server.address().port + "\n");
});
