// lib.mjs — what the Node contenders share: the command line, the measurement
// around one batch, and the JSON line the run script reads (curl_floor's shape).
//
// CPU is process.cpuUsage() over the batch alone, so Node's start-up and module
// loading (a quarter of a second) do not drown small batches; peak RSS is the
// whole process's (resourceUsage().maxRSS, KiB).

export function parseArgs(usage) {
  const argv = process.argv.slice(2);
  const url = argv[0];
  const n = Number.parseInt(argv[1], 10);
  const opts = { url, n, concurrency: 0, latencyMs: null };
  for (let i = 2; i < argv.length; i += 2) {
    const v = Number.parseInt(argv[i + 1], 10);
    if (argv[i] === "--concurrency" && v >= 0) opts.concurrency = v;
    else if (argv[i] === "--latency-ms" && v >= 0) opts.latencyMs = v;
    else opts.bad = true;
  }
  if (!url || !(n >= 1) || opts.bad) {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
  return opts;
}

// The X-Mock-Scenario header for a latency and any further keys.
export function scenarioHeaders(latencyMs, extra) {
  const keys = [];
  if (latencyMs !== null) keys.push(`latency=${latencyMs}`);
  if (extra) keys.push(extra);
  return keys.length ? { "x-mock-scenario": keys.join(";") } : {};
}

// Runs `jobs` functions, at most `cap` at a time (0: all at once), in order.
export async function limited(jobs, cap) {
  if (cap <= 0) return Promise.all(jobs.map((job) => job()));
  const results = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(cap, jobs.length) }, worker));
  return results;
}

// Times batch() → number of successes, prints the line, sets the exit code.
export async function measure(client, n, batch) {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const ok = await batch();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const line = {
    client, n, ok, wall_s: wall,
    cpu_user_s: cpu.user / 1e6, cpu_sys_s: cpu.system / 1e6,
    maxrss_kb: process.resourceUsage().maxRSS,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
  // Exit at once: closing thousands of idle keep-alive sockets is not the batch.
  process.exit(ok === n ? 0 : 1);
}
