// critics_ax.mjs — workload 2, the founding example, in Ax (the TypeScript DSPy):
// N/3 panels of three typed critics over one draft, each panel's critics at once,
// all panels at once, then the verdict by function (weighted score 0.4/0.3/0.3,
// all must approve, the feedback of the critics that did not approve, technical →
// completeness → style).  Same critics, draft and verdict as critics.lua and
// python/critics.py.
//
//   node scripts/bench/node/critics_ax.mjs URL N [--latency-ms L]
//
// Ax writes its own prompt (`fieldName: value` lines, not DSPy's markers), which
// mockllm does not recognise; so each critic's requests carry a scripted reply in
// Ax's format (X-Mock-Scenario reply=...), the same typed values mockllm gives the
// DSPy-format prompts of the other contenders.
import { ai, ax } from "@ax-llm/ax";
import { measure, parseArgs, scenarioHeaders } from "./lib.mjs";

const DRAFT =
  "Our platform cuts onboarding time by 40% with automated checklists, role-based " +
  "templates and a weekly digest for managers. Teams at three pilot customers went " +
  "live in nine days instead of fifteen, and support tickets in the first month " +
  "fell by a quarter. Book a 20-minute demo to see it on your own data.";
const CONTEXT = "B2B SaaS outreach email to heads of operations";

const CRITICS = [ // name, instructions, weight
  ["technical", "Evaluate the content from a TECHNICAL accuracy perspective.", 0.4],
  ["style", "Evaluate the content's STYLE: clarity, tone and concision.", 0.3],
  ["completeness", "Evaluate whether the content is COMPLETE for its context.", 0.3],
];
const PRIORITY = ["technical", "completeness", "style"];
const FEEDBACK = "The draft is clear; tighten the second paragraph."; // mockllm's feedback sentence

const opts = parseArgs("critics_ax.mjs URL N [--latency-ms L]");
const panels = Math.max(1, Math.floor(opts.n / 3));

// mockllm's reply in Ax's output format; %-encoded for the scenario header.
const scriptedReply = (name, score) =>
  encodeURIComponent(`${name}Score: ${score}\n${name}Feedback: ${FEEDBACK}\n${name}Approved: ${score >= 70}`);

const critics = CRITICS.map(([name, instructions, weight], i) => {
  const headers = scenarioHeaders(opts.latencyMs, `reply=${scriptedReply(name, 70 + 9 * i)}`);
  // One AI service per critic only to give each its scripted reply: a fetch
  // wrapper adds the header, nothing else.
  const llm = ai({
    name: "openai",
    apiKey: "bench-key",
    apiURL: opts.url.replace(/\/chat\/completions$/, ""),
    config: { model: "mock", stream: false },
    options: {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, ...headers } }),
    },
  });
  const program = ax(
    `content:string, context:string -> ${name}Score:number, ${name}Feedback:string, ${name}Approved:boolean`,
    { description: instructions },
  );
  return { name, weight, run: (inputs) => program.forward(llm, inputs) };
});

const cap = (s) => s[0].toUpperCase() + s.slice(1);

async function panel(inputs) {
  const outs = await Promise.all(critics.map((c) => c.run(inputs)));
  const r = Object.fromEntries(critics.map((c, i) => [c.name, outs[i]]));
  let score = 0;
  for (const c of critics) score += r[c.name][`${c.name}Score`] * c.weight;
  const approved = critics.every((c) => r[c.name][`${c.name}Approved`] === true);
  const feedback = PRIORITY.filter((name) => r[name][`${name}Approved`] !== true)
    .map((name) => `${cap(name)}: ${r[name][`${name}Feedback`]}`);
  return {
    overall_score: Math.round(score),
    approved,
    combined_feedback: feedback.join("\n") || "All criteria passed!",
  };
}

await measure("node-ax", 3 * panels, async () => {
  const inputs = { content: DRAFT, context: CONTEXT };
  const verdicts = await Promise.all(Array.from({ length: panels }, () => panel(inputs)));
  return 3 * verdicts.filter((v) => Number.isInteger(v.overall_score)).length;
});
