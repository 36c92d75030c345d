"""How long a short chat request waits for the content filter while a long text is being read.

Starts one server from this checkout (development mode, filter on, the embeddings endpoint
serving all-MiniLM-L6-v2), then:
1. sends short chat requests one at a time (max_tokens 8, temperature 0; a prompt the
   classifier's fast stage hands to its full stage): the latency alone;
2. sends one long request and, from --delay seconds later until it is answered, the same short
   chat requests one at a time: their latency beside it. The long request is either a
   moderation of --chars characters (by default the most a request may hold), or, with
   --long embeddings, 2048 inputs of about 210 word pieces each (the most a request may hold),
   which competes with the filter for MiniLM where both use the same float32 copy
   (--precision float32, or CPUs without native bfloat16).
Prints JSON: the long request's duration, and median and max latency of the short requests
alone and beside it.

Usage:
  python bench/safety_fairness.py [--long moderation|embeddings] [--chars 100000]
                                  [--precision auto|float32|bfloat16|int8]
                                  [--requests 12] [--delay 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

# The same server launcher as the gateway bench.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import start, timed_chat

from ceruleum.safety.precision import PRECISION_SETTINGS, classifier_precision

MODEL = "smollm2-135m-instruct"
EMBEDDINGS = "all-minilm-l6-v2"
FILLER = "The committee reviewed the quarterly budget and agreed to fund the new library wing. "


def short_request(client: httpx.Client) -> float:
    # A prompt the fast stage hands to the full stage, which the long text keeps busy.
    return timed_chat(client, MODEL, "Write a haiku about the sea.", max_tokens=8)


def stats(latencies: list[float]) -> dict[str, float | int]:
    return {
        "requests": len(latencies),
        "median_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--long", choices=("moderation", "embeddings"), default="moderation")
    parser.add_argument("--precision", choices=PRECISION_SETTINGS, default="auto")
    args = parser.parse_args()

    env = {
        "CERULEUM_DEV_MODE": "1",
        "CERULEUM_EMBEDDING_MODEL": "all-minilm-l6-v2",
        "CERULEUM_CONTENT_FILTER_PRECISION": args.precision,
    }
    server = start("fairness", Path(tempfile.mkdtemp(prefix="ceruleum-bench-")), env)
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as client:
            for _ in range(3):  # warm-up
                short_request(client)
            alone = [short_request(client) for _ in range(args.requests)]

            if args.long == "moderation":
                text = (FILLER * (args.chars // len(FILLER) + 1))[: args.chars]
                route, body = "/v1/moderations", {"input": text}
            else:
                inputs = [f"{i} " + FILLER * 14 for i in range(2048)]  # ~210 word pieces each
                route, body = "/v1/embeddings", {"model": EMBEDDINGS, "input": inputs}
            outcome: dict[str, float | int] = {}

            def read_long() -> None:
                started = time.perf_counter()
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as own:
                    response = own.post(route, json=body)
                outcome["status"] = response.status_code
                outcome["seconds"] = round(time.perf_counter() - started, 2)

            reader = threading.Thread(target=read_long)
            reader.start()
            time.sleep(args.delay)
            beside: list[float] = []
            while reader.is_alive():
                beside.append(short_request(client))
            reader.join()
        if outcome.get("status") != 200:
            raise RuntimeError(f"{route}: {outcome}")
        if not beside:
            raise RuntimeError("the long request ended before any short request was sent")
        long_request: dict[str, Any] = {"route": route, "seconds": outcome["seconds"]}
        if args.long == "moderation":
            long_request["characters"] = args.chars
        report = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "full_stage_precision": classifier_precision(args.precision),
            "long_request": long_request,
            "short_requests_alone": stats(alone),
            "short_requests_beside_it": stats(beside),
        }
        print(json.dumps(report, indent=2))
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
