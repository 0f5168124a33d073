// fanout.mjs — workloads 1 and 3 with the official `openai` SDK: N chat
// completions at once, or at most --concurrency at a time.
//
//   node scripts/bench/node/fanout.mjs URL N [--concurrency C] [--latency-ms L]
//
// The SDK as a user sets it up for a local server: a dummy key, no retries (each
// call one request, as for every contender), the same ~1 KB user message.
import OpenAI from "openai";
import { limited, measure, parseArgs, scenarioHeaders } from "./lib.mjs";

const PROMPT_CHARS = 900; // curl_floor.c's PROMPT_CHARS

const opts = parseArgs("fanout.mjs URL N [--concurrency C] [--latency-ms L]");
const client = new OpenAI({
  apiKey: "bench-key",
  baseURL: opts.url.replace(/\/chat\/completions$/, ""),
  maxRetries: 0,
  timeout: 600_000,
  defaultHeaders: scenarioHeaders(opts.latencyMs),
});
const messages = [{ role: "user", content: "x".repeat(PROMPT_CHARS) }];

const one = async () => {
  const r = await client.chat.completions.create({ model: "mock", messages });
  return r.choices[0].message.content ? 1 : 0;
};

await measure("node-openai", opts.n, async () => {
  const jobs = Array.from({ length: opts.n }, () => one);
  const results = await limited(jobs, opts.concurrency);
  return results.reduce((a, b) => a + b, 0);
});
