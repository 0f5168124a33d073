"""fanout.py — workloads 1 and 3 in Python asyncio: N chat completions gathered
at once, or at most --concurrency at a time.

    /usr/bin/python3 scripts/bench/python/fanout.py URL N [--concurrency C]
        [--latency-ms L] [--client aiohttp|httpx]

Each call sends the ~1 KB body curl_floor.c and fanout.lua send, decodes the JSON
answer and takes the reply text out of it, as any client that wants the text does.
"""
import asyncio
import sys

import benchlib
import transport

PROMPT_CHARS = 900  # curl_floor.c's PROMPT_CHARS


def main():
    args = benchlib.parse_args(__doc__)
    benchlib.raise_fd_limit()
    payload = {"model": "mock", "messages": [{"role": "user", "content": "x" * PROMPT_CHARS}]}
    headers = {"content-type": "application/json"}
    headers.update(benchlib.scenario_headers(args.latency_ms))

    async def batch(meter):
        async with transport.client(args.client) as c:
            cap = asyncio.Semaphore(args.concurrency) if args.concurrency > 0 else None

            async def one():
                if cap is None:
                    status, body = await c.post_json(args.url, payload, headers)
                else:
                    async with cap:
                        status, body = await c.post_json(args.url, payload, headers)
                return status == 200 and bool(body["choices"][0]["message"]["content"])

            meter.start()
            results = await asyncio.gather(*(one() for _ in range(args.n)))
            meter.stop()
            return sum(results)

    m = benchlib.measure(batch)
    return benchlib.report("py-" + args.client, args.n, m)


if __name__ == "__main__":
    sys.exit(main())
