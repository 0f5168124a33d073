"""benchlib.py — what every Python contender shares: its command line, the
measurement around one batch, and the JSON line the run script reads.

The line has curl_floor's shape. CPU is this process's user + system time over
the batch alone (getrusage before and after), so the interpreter's start-up and
imports (a quarter of a second) do not drown small batches; peak RSS is the whole
process's.
"""
import argparse
import json
import resource
import sys
import time


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("url", help="the chat completions URL")
    p.add_argument("n", type=int, help="calls in the batch")
    p.add_argument("--concurrency", type=int, default=0, help="at most this many at once (0: all)")
    p.add_argument("--latency-ms", type=int, default=None, help="mockllm's delay per answer")
    p.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    return p.parse_args()


def raise_fd_limit():
    # N connections at once need N descriptors; the soft limit is often 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def scenario_headers(latency_ms, extra=None):
    """The X-Mock-Scenario header for a latency and any further keys."""
    keys = [] if latency_ms is None else ["latency=%d" % latency_ms]
    if extra:
        keys.append(extra)
    return {"x-mock-scenario": ";".join(keys)} if keys else {}


class Meter:
    """Brackets the batch: start() once the client is set up, stop() when the
    last answer is in, before the client closes its connections (the C floor
    and tide are measured with theirs still open)."""

    def start(self):
        self._r0 = resource.getrusage(resource.RUSAGE_SELF)
        self._t0 = time.perf_counter()

    def stop(self):
        self.wall = time.perf_counter() - self._t0
        self._r1 = resource.getrusage(resource.RUSAGE_SELF)

    def result(self, ok):
        return {
            "ok": ok,
            "wall_s": self.wall,
            "cpu_user_s": self._r1.ru_utime - self._r0.ru_utime,
            "cpu_sys_s": self._r1.ru_stime - self._r0.ru_stime,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


def measure(batch):
    """Runs the coroutine function batch(meter) → number of successes; returns
    the measurement as a dict."""
    import asyncio

    meter = Meter()
    ok = asyncio.run(batch(meter))
    return meter.result(ok)


def report(client, n, m):
    line = {"client": client, "n": n}
    line.update(m)
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0 if m["ok"] == n else 1
