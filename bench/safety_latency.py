"""What content filtering adds to a short chat request.

Starts two servers from this checkout, identical but for CERULEUM_CONTENT_FILTER_ENABLED (both
in development mode, which switching the filter off requires), then sends the same short chat
requests (ordinary prompts, max_tokens 16, temperature 0, one at a time) to each, alternating
rounds so that machine noise hits both alike. Prints JSON: median and p90 latency per server
and the gap of the medians.

Usage:
  python bench/safety_latency.py [--rounds 6] [--requests-per-round 24] [--max-tokens 16]
                                 [--precision auto|float32|bfloat16|int8]

--precision is the filtering server's CERULEUM_CONTENT_FILTER_PRECISION (MiniLM's precision in
the classifier's full stage); the report names what "auto" chose on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import httpx

# The same server launcher as the gateway bench.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import Server, start, summary, timed_chat

from ceruleum.safety.precision import PRECISION_SETTINGS, classifier_precision

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "Write a haiku about the sea.",
    "What is the capital of Australia?",
    "Give me three tips for a job interview.",
    "How do I reverse a list in Python?",
    "Suggest a name for a grey cat.",
    "What's a good breakfast before a run?",
    "Translate 'good morning' into Spanish.",
    "Explain photosynthesis in one sentence.",
]


def round_of(server: Server, requests: int, max_tokens: int, offset: int) -> None:
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
        for i in range(requests):
            prompt = PROMPTS[(offset + i) % len(PROMPTS)]
            server.latencies.append(timed_chat(client, MODEL, prompt, max_tokens))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests-per-round", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--precision", choices=PRECISION_SETTINGS, default="auto")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ceruleum-bench-safety-"))
    dev = {"CERULEUM_DEV_MODE": "true"}
    servers: list[Server] = []
    try:
        precision = {"CERULEUM_CONTENT_FILTER_PRECISION": args.precision}
        servers.append(start("filter_on", workdir, {**dev, **precision}))
        servers.append(
            start("filter_off", workdir, {**dev, "CERULEUM_CONTENT_FILTER_ENABLED": "false"})
        )
        for server in servers:  # warm-up: the classifier's lazy load, prefix cache
            round_of(server, len(PROMPTS), args.max_tokens, 0)
            server.latencies.clear()
        for index in range(args.rounds):
            for server in servers:
                round_of(server, args.requests_per_round, args.max_tokens, index)
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            server.process.wait(timeout=30)
    results = {s.name: summary(s) for s in servers}
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "max_tokens": args.max_tokens,
        "full_stage_precision": classifier_precision(args.precision),
        "servers": results,
        "filter_overhead_median_ms": round(
            results["filter_on"]["median_ms"] - results["filter_off"]["median_ms"], 3
        ),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
