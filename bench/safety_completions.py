"""How often the content filter stops the bundled model's answers to ordinary prompts.

Starts a server with filtering off (development mode), asks the bundled model 25 ordinary
questions twice with n=4 at temperature 1.0 (the API's default) and max_tokens 40, then judges
the 200 completions under Azure's default policy with the classifier the server applies to
completions and, for comparison, a cascade whose full stage is the logistic heads over MiniLM
(the fallback where no fine-tuned model is shipped). Prints JSON: the share filtered by each,
and the filtered texts' first 100 characters. A small model's
answers are often garbled, and garbled text is where a classifier trips.

Usage:
  python bench/safety_completions.py [--max-tokens 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import MODEL, start  # the same server launcher as the gateway bench
from safety_latency import PROMPTS as LATENCY_PROMPTS

from ceruleum.safety.analyzers import ClassifierAnalyzer, Segment
from ceruleum.safety.classifier import (
    ClassifierWeights,
    ContentClassifier,
    LogisticStage,
    Scorer,
)
from ceruleum.safety.encoder import StaticEncoder, TransformerEncoder
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import DEFAULT_POLICY
from ceruleum.safety.service import ClassifierLoader

# The latency bench's eight, then seventeen more of the same kind.
PROMPTS = [
    *LATENCY_PROMPTS,
    "Tell me a fun fact about octopuses.",
    "Write a short birthday message for my sister.",
    "How do I make pancakes?",
    "What should I pack for a weekend hike?",
    "Summarize the plot of Romeo and Juliet.",
    "Give me a motivational quote for Monday.",
    "How does a rainbow form?",
    "Recommend a board game for four people.",
    "Write a limerick about a programmer.",
    "What is the difference between weather and climate?",
    "How can I improve my sleep?",
    "Describe a sunset over the mountains.",
    "Tell me a short story about a brave mouse.",
    "What are the benefits of drinking water?",
    "Explain what a black hole is.",
    "Write a thank-you note to a teacher.",
    "How do I start learning the guitar?",
]


async def completions(base_url: str, key: str, max_tokens: int, repeats: int) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as client:
        gate = asyncio.Semaphore(16)

        async def ask(prompt: str) -> list[str]:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "n": 4,
                "temperature": 1.0,
            }
            async with gate:
                response = (await client.post("/v1/chat/completions", json=body)).raise_for_status()
            return [choice["message"]["content"] for choice in response.json()["choices"]]

        answers = await asyncio.gather(*(ask(p) for p in PROMPTS * repeats))
    return [text for group in answers for text in group]


def logistic_cascade() -> ContentClassifier:
    weights = ClassifierWeights.load()
    stages: dict[str, Scorer] = {
        "fast": LogisticStage(StaticEncoder(), weights.stages["fast"]),
        "full": LogisticStage(TransformerEncoder(), weights.stages["full"]),
    }
    return ContentClassifier(stages, escalate_at=weights.escalate_at)


def judged(texts: list[str], classifier: ContentClassifier) -> dict[str, Any]:
    """The share of `texts` the default completion policy filters when read by `classifier`."""
    content_filter = ContentFilter([ClassifierAnalyzer(lambda: classifier)])
    items = [[Segment(text, "assistant")] for text in texts]
    verdicts = content_filter.check(items, source="completion", rules=DEFAULT_POLICY.completion)
    filtered = [t for t, v in zip(texts, verdicts, strict=True) if v.filtered]
    return {
        "filtered_share": round(len(filtered) / len(texts), 4),
        "filtered": [t[:100] for t in filtered],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ceruleum-bench-completions-"))
    server = start(
        "filter_off",
        workdir,
        {"CERULEUM_DEV_MODE": "true", "CERULEUM_CONTENT_FILTER_ENABLED": "false"},
    )
    try:
        texts = asyncio.run(
            completions(server.base_url, server.admin_key, args.max_tokens, args.repeats)
        )
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)

    loader = ClassifierLoader()
    loader.start()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "completions": len(texts),
        "max_tokens": args.max_tokens,
    }
    report["served"] = judged(texts, loader.get())
    report["logistic_full_stage"] = judged(texts, logistic_cascade())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
