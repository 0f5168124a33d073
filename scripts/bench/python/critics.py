"""critics.py — workload 2, the founding example, as a plain asyncio program:
N/3 panels of three critics (technical, style, completeness) over one draft,
each panel's critics gathered at once, all panels gathered at once, then the
panel's verdict by function: weighted score 0.4/0.3/0.3, all must approve,
feedback of the critics that did not approve, technical → completeness → style.

    /usr/bin/python3 scripts/bench/python/critics.py URL N [--latency-ms L]
        [--client aiohttp|httpx]

The critics, the draft and the aggregation are the ones in critics.lua and
critics_ax.mjs; the signature formatting and parsing is dspy_port's.
"""
import asyncio
import sys

import benchlib
import dspy_port
import transport

DRAFT = (
    "Our platform cuts onboarding time by 40% with automated checklists, role-based "
    "templates and a weekly digest for managers. Teams at three pilot customers went "
    "live in nine days instead of fifteen, and support tickets in the first month "
    "fell by a quarter. Book a 20-minute demo to see it on your own data."
)
CONTEXT = "B2B SaaS outreach email to heads of operations"

CRITICS = [  # name, instructions, weight
    ("technical", "Evaluate the content from a TECHNICAL accuracy perspective.", 0.4),
    ("style", "Evaluate the content's STYLE: clarity, tone and concision.", 0.3),
    ("completeness", "Evaluate whether the content is COMPLETE for its context.", 0.3),
]
PRIORITY = ["technical", "completeness", "style"]


def critic(name, instructions):
    sig = dspy_port.Signature(
        "content, context -> {0}_score: int, {0}_feedback, {0}_approved: bool".format(name),
        instructions,
    )
    return dspy_port.Predict(sig)


def aggregate(results):
    """The panel's verdict from {name: outputs}."""
    score = sum(results[name][name + "_score"] * w for name, _, w in CRITICS)
    approved = all(results[name][name + "_approved"] for name, _, _ in CRITICS)
    feedback = [
        "%s: %s" % (name.capitalize(), results[name][name + "_feedback"])
        for name in PRIORITY
        if not results[name][name + "_approved"]
    ]
    return {
        "overall_score": round(score),
        "approved": approved,
        "combined_feedback": "\n".join(feedback) or "All criteria passed!",
    }


def main():
    args = benchlib.parse_args(__doc__)
    benchlib.raise_fd_limit()
    panels = max(1, args.n // 3)
    headers = {"content-type": "application/json"}
    headers.update(benchlib.scenario_headers(args.latency_ms))
    critics = [(name, critic(name, instr)) for name, instr, _ in CRITICS]

    async def batch(meter):
        async with transport.client(args.client) as c:

            async def panel():
                outs = await asyncio.gather(
                    *(p(c, args.url, headers, content=DRAFT, context=CONTEXT) for _, p in critics)
                )
                return aggregate({name: out for (name, _), out in zip(critics, outs)})

            meter.start()
            verdicts = await asyncio.gather(*(panel() for _ in range(panels)))
            meter.stop()
            return 3 * sum(1 for v in verdicts if isinstance(v["overall_score"], int))

    m = benchlib.measure(batch)
    return benchlib.report("py-" + args.client, 3 * panels, m)


if __name__ == "__main__":
    sys.exit(main())
