"""Streaming load generator for any OpenAI-compatible server.

Stdlib + httpx only (no ``ceruleum`` import), so it also measures peers such as
``python -m llama_cpp.server``. Each concurrency level ``c`` runs exactly ``c``
workers on one shared ``httpx.AsyncClient``; every request is streamed (SSE) and
timed for TTFT, inter-token latency, end-to-end latency and aggregate output
tokens/s. JSON goes to stdout, progress to stderr.

Usage examples::

    python bench/serve.py
    python bench/serve.py --base-url http://127.0.0.1:8000/v1 --concurrency 1 4 16
    python bench/serve.py --endpoint completions --max-tokens 128 --output out.json
    python bench/serve.py --model my-model --requests-per-level 32 --warmup 0
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_PROMPT = "Write a short story about a robot learning to paint."
MAX_ERROR_MESSAGES = 5
HTTP_OK = 200


@dataclass(frozen=True)
class Target:
    """Everything needed to send one benchmark request."""

    client: httpx.AsyncClient
    path: str
    body: dict[str, Any]
    timeout: float


@dataclass
class RequestResult:
    """Timings of one streamed request (``perf_counter`` seconds)."""

    start: float
    end: float = 0.0
    token_times: list[float] = field(default_factory=list)
    usage_tokens: int | None = None
    error: str | None = None

    @property
    def output_tokens(self) -> int:
        """Server-reported ``completion_tokens``, else the content-chunk count."""
        usage = self.usage_tokens
        return len(self.token_times) if usage is None else usage


def percentile(values: list[float], q: float) -> float | None:
    """Percentile ``q`` (0-100) by linear interpolation; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def scaled(value: float | None, factor: float) -> float | None:
    """``value * factor`` rounded to 3 decimals, passing ``None`` through."""
    return None if value is None else round(value * factor, 3)


def build_payload(args: argparse.Namespace, model: str) -> tuple[str, dict[str, Any]]:
    """Return the endpoint path and the JSON body sent for every request."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if args.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": args.prompt}]
        return "/chat/completions", body
    body["prompt"] = args.prompt
    return "/completions", body


def chunk_text(chunk: dict[str, Any]) -> str:
    """Concatenated content (chat ``delta.content`` or completions ``text``)."""
    parts: list[str] = []
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str):
            parts.append(text)
    return "".join(parts)


async def consume_stream(response: httpx.Response, result: RequestResult) -> None:
    """Read SSE ``data:`` lines until ``[DONE]``, recording content arrivals."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        now = time.perf_counter()
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            raise ValueError(f"error in stream: {chunk['error']}")
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            result.usage_tokens = usage["completion_tokens"]
        if chunk_text(chunk):
            result.token_times.append(now)
    raise ValueError("stream ended without data: [DONE]")


async def stream_one(target: Target) -> RequestResult:
    """Send one streamed request; failures are recorded, never raised."""
    result = RequestResult(start=time.perf_counter())
    request = target.client.stream("POST", target.path, json=target.body)
    try:
        async with asyncio.timeout(target.timeout), request as resp:
            if resp.status_code != HTTP_OK:
                text = (await resp.aread()).decode(errors="replace")[:200]
                result.error = f"HTTP {resp.status_code}: {text}"
            else:
                await consume_stream(resp, result)
    except TimeoutError:
        result.error = f"timeout after {target.timeout}s"
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.end = time.perf_counter()
    return result


async def run_level(target: Target, concurrency: int, requests: int) -> list[RequestResult]:
    """Run ``requests`` requests with exactly ``concurrency`` workers."""
    pending = iter(range(requests))
    results: list[RequestResult] = []

    async def worker() -> None:
        for _ in pending:
            results.append(await stream_one(target))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def summarize(concurrency: int, results: list[RequestResult]) -> dict[str, Any]:
    """Aggregate one level; latency and token figures use successful requests."""
    ok = [r for r in results if r.error is None]
    errors = [r.error for r in results if r.error is not None]
    first = min((r.start for r in results), default=0.0)
    wall = max((r.end for r in results), default=first) - first
    tokens = sum(r.output_tokens for r in ok)
    ttfts = [r.token_times[0] - r.start for r in ok if r.token_times]
    itls = [b - a for r in ok for a, b in itertools.pairwise(r.token_times)]
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(errors),
        "error_messages": errors[:MAX_ERROR_MESSAGES],
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(tokens / wall, 3) if wall > 0 else None,
        "ttft_ms_p50": scaled(percentile(ttfts, 50), 1000),
        "ttft_ms_p99": scaled(percentile(ttfts, 99), 1000),
        "itl_ms_p50": scaled(percentile(itls, 50), 1000),
        "itl_ms_p99": scaled(percentile(itls, 99), 1000),
        "latency_s_p50": scaled(percentile([r.end - r.start for r in ok], 50), 1),
    }


def throughput_ratio(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens/s at the highest concurrency divided by tokens/s at the lowest."""
    low = min(levels, key=lambda lv: int(lv["concurrency"]), default=None)
    high = max(levels, key=lambda lv: int(lv["concurrency"]), default=None)
    if low is None or high is None or low is high:
        return {
            "throughput_ratio_max_to_min_concurrency": None,
            "throughput_ratio_concurrency": None,
        }
    lo_tps, hi_tps = low["output_tokens_per_s"], high["output_tokens_per_s"]
    ratio = round(hi_tps / lo_tps, 3) if lo_tps and hi_tps is not None else None
    return {
        "throughput_ratio_max_to_min_concurrency": ratio,
        "throughput_ratio_concurrency": {
            "max": high["concurrency"],
            "min": low["concurrency"],
        },
    }


async def discover_model(client: httpx.AsyncClient) -> str:
    resp = await client.get("/models")
    resp.raise_for_status()
    return str(resp.json()["data"][0]["id"])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    top = max(args.concurrency)
    limits = httpx.Limits(max_connections=top, max_keepalive_connections=top)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    base_url = args.base_url.rstrip("/")
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=args.timeout
    ) as client:
        model = args.model or await discover_model(client)
        path, body = build_payload(args, model)
        target = Target(client, path, body, args.timeout)
        log(f"model={model} endpoint={path} warmup={args.warmup}")
        for result in await run_level(target, 1, args.warmup):
            if result.error:
                log(f"warmup error: {result.error}")
        levels: list[dict[str, Any]] = []
        for c in args.concurrency:
            n = args.requests_per_level or max(3 * c, 8)
            log(f"concurrency={c} requests={n} ...")
            level = summarize(c, await run_level(target, c, n))
            log(f"  {level['output_tokens_per_s']} tok/s, {level['errors']} errors")
            levels.append(level)
    return {
        "base_url": args.base_url,
        "model": model,
        "max_tokens": args.max_tokens,
        "endpoint": args.endpoint,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "levels": levels,
        **throughput_ratio(levels),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    p.add_argument("--model", help="default: first id from GET {base-url}/models")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests-per-level", type=int, help="default: max(3*c, 8)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured requests first")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--output", help="also write the JSON to this path")
    args = p.parse_args(argv)
    if min(args.concurrency) < 1:
        p.error("--concurrency values must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        log(f"model discovery failed ({type(exc).__name__}: {exc}); pass --model")
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
