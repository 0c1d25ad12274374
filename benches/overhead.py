"""What the studio adds to one image: the same request made directly against a fake upstream with the `openai`
SDK, and through the studio's OpenAI Images API (and, when it is installed, LiteLLM's proxy) in front of it.

Starts a fake OpenAI Images API in this process that answers after `--latency` seconds (2) with a realistic
~2 MB 1024x1024 PNG, then Daphne and one `celery -A config worker --pool threads` as compose.yaml does, on a
throwaway PostgreSQL database, with `STUDIO_PROVIDER=openai` pointed at the fake. Then `--pairs` (20) times,
one after the other, in an order that alternates: `client.images.generate(...)` directly, through the studio,
and through LiteLLM when `--litellm` names its `litellm` command (`litellm[proxy]` in a virtualenv of its
own; the default looks for `.bench/litellm/bin/litellm`). Then the same with `stream=True, partial_images=1`:
time to the first partial image and to the final one.

It prints a markdown table: per route p50 / p90 end-to-end time, the p50 overhead over the direct call (per
pair: route minus direct), the ratio of p50s, and the studio's own `Server-Timing` split (queue, upstream,
storage). With `--max-overhead-ms`/`--max-ratio` it exits non-zero when the studio misses them.

    .venv/bin/python benches/overhead.py                      # 20 pairs, 2 s upstream
    .venv/bin/python benches/overhead.py --litellm /path/to/venv/bin/litellm
    .venv/bin/python benches/overhead.py --quick              # 3 pairs, 0.5 s upstream: a smoke run

DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432); REDIS_URL the Redis
(default redis://127.0.0.1:6379/14, else an embedded one). docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

import openai  # noqa: E402
from inflight import (  # noqa: E402
    DEFAULT_POSTGRES,
    BenchFailed,
    CountingUpstream,
    create_postgres_database,
    fake_upstream,
    percentile,
    realistic_image,
    redis_url_for_bench,
    stop_process,
)
from load import environment, free_port, manage, start_web, start_worker, wait_for  # noqa: E402

SEED = """
from accounts.models import ApiKey
from accounts.services import personal_workspace, user_signup
user = user_signup(username="overhead", email="overhead@example.com", password="overhead bench secret 1")
_, secret = ApiKey.issue(user=user, workspace=personal_workspace(user), name="overhead")
print("KEY " + secret)
"""
LITELLM_CONFIG = """model_list:
  - model_name: gpt-image-2
    litellm_params:
      model: openai/gpt-image-2
      api_base: {base}
      api_key: bench
general_settings:
  master_key: sk-bench-litellm
litellm_settings:
  drop_params: true
"""
REQUEST = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}


def plain(client: openai.OpenAI, prompt: str, timings: dict) -> float:
    began = time.perf_counter()
    raw = client.images.with_raw_response.generate(prompt=prompt, **REQUEST)
    answer = raw.parse()
    elapsed = time.perf_counter() - began
    if not answer.data or not answer.data[0].b64_json or len(answer.data[0].b64_json) < 100_000:
        raise BenchFailed(f"{client.base_url}: no image in the answer")
    if header := raw.headers.get("server-timing"):
        timings.setdefault("server-timing", []).append(header)
    return elapsed


def streamed(client: openai.OpenAI, prompt: str, timings: dict) -> float:
    began = time.perf_counter()
    first = None
    completed = False
    for event in client.images.generate(prompt=prompt, stream=True, partial_images=1, **REQUEST):
        kind = getattr(event, "type", "")
        if kind.endswith("partial_image") and first is None:
            first = time.perf_counter() - began
        elif kind.endswith("completed"):
            completed = True
    elapsed = time.perf_counter() - began
    if not completed or first is None:
        raise BenchFailed(f"{client.base_url}: the stream ended without a partial and a final image")
    timings.setdefault("first partial", []).append(first)
    return elapsed


def start_litellm(command: str, upstream: str, data_dir: Path, stack: contextlib.ExitStack) -> str:
    config = data_dir / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(base=upstream))
    port = free_port()
    log = data_dir / "litellm.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "DATABASE_"))}
    process = subprocess.Popen(
        [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env | {"LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_process, process)
    wait_for(f"http://127.0.0.1:{port}/health/liveliness", process, log)
    return f"http://127.0.0.1:{port}/v1"


def run_pairs(
    routes: dict[str, openai.OpenAI], pairs: int, call: Callable[[openai.OpenAI, str, dict], float]
) -> tuple[dict[str, list[float]], dict[str, dict]]:
    times: dict[str, list[float]] = {name: [] for name in routes}
    extra: dict[str, dict] = {name: {} for name in routes}
    names = list(routes)
    for number in range(pairs):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(call(routes[name], f"a lighthouse at dusk, {number}", extra[name]))
    return times, extra


def server_timing(headers: list[str]) -> str:
    parts: dict[str, list[float]] = {}
    for header in headers:
        for item in header.split(","):
            name, _, rest = item.strip().partition(";dur=")
            if rest:
                parts.setdefault(name, []).append(float(rest))
    return ", ".join(f"{name} p50 {statistics.median(values):.0f} ms" for name, values in parts.items())


def table(title: str, times: dict[str, list[float]], extra: dict[str, dict]) -> tuple[list[str], dict]:
    direct = times["direct"]
    lines = [
        f"\n{title}\n",
        "| Route | p50 | p90 | p50 overhead over direct (per pair) | ratio of p50s | first partial p50 |",
        "|---|---|---|---|---|---|",
    ]
    figures = {}
    for name, values in times.items():
        overheads = [(value - base) * 1000 for value, base in zip(values, direct, strict=True)]
        partial = extra[name].get("first partial")
        figures[name] = {
            "p50 overhead ms": statistics.median(overheads),
            "ratio": statistics.median(values) / statistics.median(direct),
        }
        cells = [
            name,
            f"{statistics.median(values) * 1000:.0f} ms",
            f"{percentile(values, 0.9) * 1000:.0f} ms",
            "-" if name == "direct" else f"{statistics.median(overheads):.0f} ms",
            f"{figures[name]['ratio']:.3f}",
            f"{statistics.median(partial) * 1000:.0f} ms" if partial else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if headers := extra.get("studio", {}).get("server-timing"):
        lines.append(f"\nThe studio's Server-Timing: {server_timing(headers)}")
    return lines, figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the fake upstream takes (2)")
    parser.add_argument("--litellm", default=str(ROOT / ".bench" / "litellm" / "bin" / "litellm"))
    parser.add_argument("--max-overhead-ms", type=float, default=0, help="fail above this p50 (0: report)")
    parser.add_argument("--max-ratio", type=float, default=0, help="fail above this ratio (0: report)")
    parser.add_argument("--quick", action="store_true", help="3 pairs at 0.5 s: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.latency = 3, 0.5

    fake_upstream.make_image = realistic_image
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-overhead-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        redis_url, _ = redis_url_for_bench(stack, data_dir)
        upstream = stack.enter_context(CountingUpstream(latency=args.latency))
        for colour in ((200, 30, 30), (30, 120, 200), (40, 160, 60), (220, 180, 40)):
            realistic_image((1024, 1024), "png", colour)  # drawn before the clock starts
        queue = f"bench-overhead-{uuid.uuid4().hex[:6]}"
        env = environment(database_url, redis_url, data_dir, queue, upstream.base_url)
        env["SIGNUP_BONUS_CREDITS"] = "1000000"
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        seeded = manage(env, "shell", "-c", SEED)
        key = next(line for line in seeded.splitlines() if line.startswith("KEY "))[4:]

        start_worker(env, data_dir, stack, concurrency=20)
        base = start_web(env, data_dir, stack)

        options = {"max_retries": 0, "timeout": 120}
        routes = {
            "direct": openai.OpenAI(base_url=upstream.base_url, api_key="bench", **options),
            "studio": openai.OpenAI(base_url=f"{base}/v1", api_key=key, **options),
        }
        litellm = shutil.which(args.litellm) or (args.litellm if Path(args.litellm).exists() else "")
        if litellm:
            routes["litellm"] = openai.OpenAI(
                base_url=start_litellm(litellm, upstream.base_url, data_dir, stack),
                api_key="sk-bench-litellm",
                **options,
            )
        else:
            print(
                f"LiteLLM not measured: no {args.litellm} (pip install 'litellm[proxy]' in a venv of its own)"
            )
        # A warm-up call per route: imports, connection pools and the worker's first task are not the figure.
        run_pairs(routes, 1, plain)
        plain_times, plain_extra = run_pairs(routes, args.pairs, plain)
        stream_routes = {name: client for name, client in routes.items() if name != "litellm"}
        streamed_times, streamed_extra = run_pairs(stream_routes, args.pairs, streamed)

    megabytes = len(realistic_image((1024, 1024), "png", (200, 30, 30))) / 1e6
    print(f"{args.pairs} pairs, upstream {args.latency} s, a {megabytes:.1f} MB PNG, {os.cpu_count()} cores")
    lines, figures = table("Plain (`images.generate`)", plain_times, plain_extra)
    stream_lines, stream_figures = table(
        "Streamed (`stream=True, partial_images=1`): time to the final image", streamed_times, streamed_extra
    )
    print("\n".join(lines + stream_lines))
    print(json.dumps({"plain": figures, "streamed": stream_figures}, indent=2))
    problems = []
    studio = figures["studio"]
    if args.max_overhead_ms and studio["p50 overhead ms"] > args.max_overhead_ms:
        problems.append(f"p50 overhead {studio['p50 overhead ms']:.0f} ms > {args.max_overhead_ms:.0f} ms")
    if args.max_ratio and studio["ratio"] > args.max_ratio:
        problems.append(f"ratio {studio['ratio']:.3f} > {args.max_ratio}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
