"""How long a short chat request waits for the content filter while a long text is being read.

Starts one server from this checkout (development mode, filter on), then:
1. sends short chat requests one at a time (max_tokens 8, temperature 0; a prompt the
   classifier's fast stage hands to its full stage): the latency alone;
2. sends one moderation request of --chars characters (the largest a request may hold by
   default) and, from --delay seconds later until it is answered, the same short chat requests
   one at a time: their latency beside the long read.
Prints JSON: the moderation's duration, and median and max latency of the short requests alone
and beside it.

Usage:
  python bench/safety_fairness.py [--chars 100000] [--requests 12] [--delay 0.5]
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

import httpx

# The same server launcher as the gateway bench.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import start

MODEL = "smollm2-135m-instruct"
FILLER = "The committee reviewed the quarterly budget and agreed to fund the new library wing. "


def short_request(client: httpx.Client) -> float:
    body = {
        "model": MODEL,
        # A prompt the fast stage hands to the full stage, which the long text keeps busy.
        "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
        "max_tokens": 8,
        "temperature": 0,
    }
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"chat: {response.status_code} {response.text}")
    return elapsed


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
    args = parser.parse_args()

    server = start(
        "fairness", Path(tempfile.mkdtemp(prefix="ceruleum-bench-")), {"CERULEUM_DEV_MODE": "1"}
    )
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as client:
            for _ in range(3):  # warm-up
                short_request(client)
            alone = [short_request(client) for _ in range(args.requests)]

            text = (FILLER * (args.chars // len(FILLER) + 1))[: args.chars]
            outcome: dict[str, float | int] = {}

            def moderate() -> None:
                started = time.perf_counter()
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as own:
                    response = own.post("/v1/moderations", json={"input": text})
                outcome["status"] = response.status_code
                outcome["seconds"] = round(time.perf_counter() - started, 2)

            reader = threading.Thread(target=moderate)
            reader.start()
            time.sleep(args.delay)
            beside: list[float] = []
            while reader.is_alive():
                beside.append(short_request(client))
            reader.join()
        if outcome.get("status") != 200:
            raise RuntimeError(f"moderation: {outcome}")
        if not beside:
            raise RuntimeError("the moderation ended before any short request was sent")
        report = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "moderation": {"characters": args.chars, "seconds": outcome["seconds"]},
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
