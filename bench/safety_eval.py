"""Quality of the content filter on the held-out evaluation set (data/safety/eval/), or with
--split dev on the development set that chooses the operating point (data/safety/dev/).

Runs every item through the server's own content filter (the same analyzers, cascade and
thresholds as serving) under Azure's default policy (medium and above filtered; jailbreaks
filtered), and prints JSON: per category precision and recall on medium-and-high items, recall
on high and on low items, jailbreak and indirect-attack recall and precision, the false-positive
rate on benign text (hard negatives separately), and how often the full stage was needed.

Usage:
  python bench/safety_eval.py [--split eval|dev|candidates] [--data data/safety]
                              [--policy POLICY_JSON] [--exclude-files GLOB] [--only-files GLOB]
                              [--precision auto|float32|bfloat16|int8]

--exclude-files 'session9_*' with --split dev reads only the former evaluation set, the half of
dev that no later writer's brief shaped (docs/safety.md, "Version N"); --split candidates
--exclude-files 'session[89]_*' read session 11's candidate files until version O took them up;
since then --split dev --only-files 'session11_*' reads the half of them that went to dev.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import time
from pathlib import Path

from ceruleum.safety.policy import ContentFilterPolicy
from ceruleum.safety.precision import PRECISION_SETTINGS, classifier_precision
from ceruleum.safety.service import ClassifierLoader
from ceruleum.safety.training.dataset import DATA_DIR, load
from ceruleum.safety.training.evaluation import evaluate, ratio


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--policy", default=None, help="a content_filter policy as JSON")
    parser.add_argument(
        "--split",
        choices=("eval", "dev", "candidates"),
        default="eval",
        help='"eval" (held out, measured once per version), "dev" (chooses the operating point) or'
        ' "candidates" (training texts not yet trained on)',
    )
    parser.add_argument(
        "--exclude-files",
        metavar="GLOB",
        default=None,
        help="leave out items from files whose name matches GLOB, e.g. 'session9_*'",
    )
    parser.add_argument(
        "--only-files",
        metavar="GLOB",
        default=None,
        help="keep only items from files whose name matches GLOB, e.g. 'session11_*'",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_SETTINGS,
        default="auto",
        help="MiniLM's precision in the full stage, as the server's content_filter_precision",
    )
    args = parser.parse_args()

    policy = ContentFilterPolicy.from_dict(json.loads(args.policy) if args.policy else None)
    examples = load(args.split, args.data)
    if args.exclude_files:
        examples = [e for e in examples if not fnmatch.fnmatch(e.source, args.exclude_files)]
    if args.only_files:
        examples = [e for e in examples if fnmatch.fnmatch(e.source, args.only_files)]
    if not examples:
        parser.error(f"no items left in {args.data / args.split} to measure")
    loader = ClassifierLoader(args.precision)
    loader.start()
    classifier = loader.get()
    started = time.perf_counter()
    report = evaluate(classifier, examples, policy)
    elapsed = time.perf_counter() - started
    stages = [s.stage for s in classifier.classify([e.text for e in examples])]
    report["full_stage_share"] = ratio(stages.count("full"), len(stages))
    report["ms_per_item"] = round(elapsed / len(examples) * 1000, 2)
    report["items"] = len(examples)
    report["split"] = args.split
    report["excluded_files"] = args.exclude_files
    report["only_files"] = args.only_files
    report["policy"] = policy.prompt.to_dict("prompt")
    report["full_stage_precision"] = classifier_precision(args.precision)
    report["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
