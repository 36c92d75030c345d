"""Cost of grammar-constrained decoding, measured through any OpenAI-compatible server.

Prints JSON with inter-token latency (the decode time per token a client sees) for:
  free_alone         free requests, one at a time
  constrained_alone  the same prompt with a json_schema response_format, one at a time
  free_batch         2K free requests at once
  mixed_batch        K free + K constrained requests at once (the free ones' latency reported)
and the two ratios the grammar budget is judged by:
  constrained_alone / free_alone   (target <= 2.0)
  mixed_batch.free / free_batch    (target <= 1.25)

Usage:
  python bench/grammar.py --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import sys
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import RequestResult, Target, percentile, scaled, stream_one

PROMPT = "Write a short story about a robot learning to paint, with a title."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
    "required": ["title", "story"],
    "additionalProperties": False,
}


def body(model: str, max_tokens: int, constrained: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if constrained:
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "story", "schema": SCHEMA, "strict": True},
        }
    return payload


def latency(results: list[RequestResult]) -> dict[str, Any]:
    gaps = [b - a for r in results if r.error is None for a, b in itertools.pairwise(r.token_times)]
    return {
        "requests": len(results),
        "errors": [r.error for r in results if r.error is not None][:3],
        "tokens": sum(r.output_tokens for r in results if r.error is None),
        "itl_ms_mean": scaled(sum(gaps) / len(gaps), 1000) if gaps else None,
        "itl_ms_p50": scaled(percentile(gaps, 50), 1000),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=2 * args.batch + 2)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with httpx.AsyncClient(base_url=args.base_url, limits=limits, headers=headers) as client:
        free = Target(client, "/chat/completions", body(args.model, args.max_tokens, False), 300)
        constrained = Target(
            client, "/chat/completions", body(args.model, args.max_tokens, True), 300
        )
        for target in (free, constrained):  # warm-up (prefix cache, grammar paths)
            await stream_one(target)

        async def sequential(target: Target) -> list[RequestResult]:
            return [await stream_one(target) for _ in range(args.repeats)]

        free_alone = await sequential(free)
        constrained_alone = await sequential(constrained)
        free_batch = await asyncio.gather(*(stream_one(free) for _ in range(2 * args.batch)))
        mixed = await asyncio.gather(
            *(stream_one(free) for _ in range(args.batch)),
            *(stream_one(constrained) for _ in range(args.batch)),
        )
    report = {
        "base_url": args.base_url,
        "model": args.model,
        "max_tokens": args.max_tokens,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "free_alone": latency(free_alone),
        "constrained_alone": latency(constrained_alone),
        "free_batch": latency(list(free_batch)),
        "mixed_batch_free": latency(list(mixed[: args.batch])),
        "mixed_batch_constrained": latency(list(mixed[args.batch :])),
    }
    report["ratio_constrained_to_free_alone"] = _ratio(
        report["constrained_alone"], report["free_alone"]
    )
    report["ratio_free_in_mixed_to_free_batch"] = _ratio(
        report["mixed_batch_free"], report["free_batch"]
    )
    return report


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if a["itl_ms_mean"] is None or not b["itl_ms_mean"]:
        return None
    return round(a["itl_ms_mean"] / b["itl_ms_mean"], 3)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="sequential requests per kind")
    parser.add_argument("--batch", type=int, default=4, help="K: free+constrained per kind")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
