"""What the gateway (auth, quota, usage metering) adds to a request.

Starts three servers from this checkout on free ports: gateway on with SQLite, gateway on with
PostgreSQL (a fresh database), and gateway off (development mode), then sends the same chat
request (max_tokens 1) at a fixed concurrency to each, alternating rounds so that machine noise
hits all of them alike. Prints JSON: median and p90 latency per server, and the medians' gaps
(``overhead_median_ms``). Also the median over rounds of each round's gap to the gateway-off round
next to it (``overhead_paired_median_ms``): on a shared machine whose load drifts within a run,
the gap between neighbouring rounds is the steadier figure.

Content filtering (not part of the gateway) is on in all three servers, as deployed. With
``--content-filter off`` it is off in all three (which then run in development mode, the only
mode that allows it), to see the gateway's cost without the filter's thread pool around it.

With ``--control`` a fourth server, a second gateway-off one, runs in the same rotation: its gap
to the first (``noise_median_ms``) shows how far two identical servers drift apart in this run,
the scale on which the overheads can be read.

Usage:
  python bench/gateway.py [--rounds 6] [--requests-per-round 64] [--concurrency 8]
      [--content-filter on|off] [--control]
      [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

MODEL = "smollm2-135m-instruct"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 1}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    admin_key: str
    key: str = ""
    latencies: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    admin_key = "bench-admin-" + secrets.token_hex(16)
    data_dir = workdir / name
    full_env = {
        **os.environ,
        "CERULEUM_DATA_DIR": str(data_dir),
        "CERULEUM_ADMIN_KEY": admin_key,
        "CERULEUM_EMBEDDING_MODEL": "",
        "CERULEUM_LOG_LEVEL": "warning",
        # A quota no run reaches: every request still goes through the full quota check, but
        # a long run is not refused at the default 720 requests a minute.
        "CERULEUM_DEFAULT_TOKENS_PER_MINUTE": "1000000000",
        **env,
    }
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ceruleum", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", admin_key)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see {workdir / (name + '.log')}")
        try:
            if httpx.get(server.base_url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{name} did not start")


def timed_chat(client: httpx.Client, model: str, prompt: str, max_tokens: int) -> float:
    """Seconds one short chat request (temperature 0) takes; any status but 200 is an error."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"chat: {response.status_code} {response.text}")
    return elapsed


def member_key(server: Server) -> str:
    """A project and a member key, as a real tenant would call with."""
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.base_url, headers=admin, timeout=30) as client:
        project = client.post("/admin/projects", json={"name": "bench"}).raise_for_status().json()
        created = client.post(
            f"/admin/projects/{project['id']}/keys",
            json={"name": "bench", "role": "member"},
        ).raise_for_status()
        return str(created.json()["secret"])


async def round_of(server: Server, requests: int, concurrency: int) -> float:
    """Run one round; its median latency (seconds)."""
    headers = {"Authorization": f"Bearer {server.key}"} if server.key else {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=60
    ) as client:
        pending = iter(range(requests))

        async def worker() -> None:
            for _ in pending:
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=BODY)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"{server.name}: {response.status_code} {response.text}")
                server.latencies.append(elapsed)

        first = len(server.latencies)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return statistics.median(server.latencies[first:])


def create_postgres_database(admin_dsn: str) -> tuple[str, str]:
    import asyncpg

    name = "ceruleum_bench_" + secrets.token_hex(4)

    async def create() -> None:
        connection = await asyncpg.connect(admin_dsn)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()

    asyncio.run(create())
    return name, admin_dsn.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(admin_dsn)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    asyncio.run(drop())


def summary(server: Server) -> dict[str, Any]:
    values = sorted(server.latencies)
    return {
        "requests": len(values),
        "median_ms": round(statistics.median(values) * 1000, 3),
        "p90_ms": round(values[int(len(values) * 0.9)] * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests-per-round", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--content-filter", choices=["on", "off"], default="on")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--control",
        action="store_true",
        help="add a second gateway-off server: its gap to the first is this run's noise",
    )
    args = parser.parse_args()
    common = (
        {}
        if args.content_filter == "on"
        else {"CERULEUM_DEV_MODE": "true", "CERULEUM_CONTENT_FILTER_ENABLED": "false"}
    )

    workdir = Path(tempfile.mkdtemp(prefix="ceruleum-bench-"))
    pg_name, pg_url = create_postgres_database(args.postgres)
    servers: list[Server] = []
    rounds: dict[str, list[float]] = {
        "gateway_sqlite": [],
        "gateway_postgres": [],
        "gateway_off": [],
        "gateway_off_control": [],
    }
    try:
        servers.append(start("gateway_sqlite", workdir, common))
        servers.append(
            start("gateway_postgres", workdir, {**common, "CERULEUM_DATABASE_URL": pg_url})
        )
        servers.append(
            start(
                "gateway_off",
                workdir,
                {**common, "CERULEUM_DEV_MODE": "true", "CERULEUM_GATEWAY_ENABLED": "false"},
            )
        )
        if args.control:
            off_env = {**common, "CERULEUM_DEV_MODE": "true", "CERULEUM_GATEWAY_ENABLED": "false"}
            servers.append(start("gateway_off_control", workdir, off_env))
        for server in servers[:2]:
            server.key = member_key(server)
        for server in servers:  # warm-up: prefix cache, connections, first-query costs
            asyncio.run(round_of(server, args.concurrency * 2, args.concurrency))
            server.latencies.clear()
        for _ in range(args.rounds):
            for server in servers:
                rounds[server.name].append(
                    asyncio.run(round_of(server, args.requests_per_round, args.concurrency))
                )
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            server.process.wait(timeout=30)
        drop_postgres_database(args.postgres, pg_name)
    results = {s.name: summary(s) for s in servers}
    off = results["gateway_off"]["median_ms"]

    def paired(name: str) -> float:
        gaps = [a - b for a, b in zip(rounds[name], rounds["gateway_off"], strict=True)]
        return round(statistics.median(gaps) * 1000, 3)

    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "concurrency": args.concurrency,
        "max_tokens": 1,
        "content_filter": args.content_filter,
        "servers": results,
        "overhead_median_ms": {
            "sqlite": round(results["gateway_sqlite"]["median_ms"] - off, 3),
            "postgres": round(results["gateway_postgres"]["median_ms"] - off, 3),
        },
        "overhead_paired_median_ms": {
            "sqlite": paired("gateway_sqlite"),
            "postgres": paired("gateway_postgres"),
        },
    }
    if args.control:
        # Two identical servers: any gap between them is noise, not gateway.
        report["noise_median_ms"] = round(results["gateway_off_control"]["median_ms"] - off, 3)
        report["noise_paired_median_ms"] = paired("gateway_off_control")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
