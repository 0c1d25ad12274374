"""What finishing one image costs the worker: checking and thumbnailing a result, as the runner does, on a
realistic ~2 MB 1024x1024 PNG and a 3840x2160 one, and whether that work runs beside other threads (Pillow
releases the GIL while it decodes, resizes and encodes).

    .venv/bin/python benches/images.py

Prints milliseconds per image (best of three runs of --repeat), for the two-pass way (check_image, then
thumbnail: two decodes) and the one the runner uses (check_and_thumbnail: one decode), and the wall time of
the same work on one thread and on two. No database, no network.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

from inflight import realistic_image  # noqa: E402

from studio.engine import images  # noqa: E402


def per_image_ms(work, data: bytes, repeat: int) -> float:
    work(data)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeat):
            work(data)
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1000


def two_passes(data: bytes) -> None:
    images.check_image(data, max_bytes=1 << 31)
    images.thumbnail(data)


def one_pass(data: bytes) -> None:
    images.check_and_thumbnail(data, max_bytes=1 << 31)


def on_threads(data: bytes, threads: int, per_thread: int) -> float:
    def run() -> None:
        for _ in range(per_thread):
            one_pass(data)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="images per timed run (10)")
    args = parser.parse_args()
    print("| Image | Bytes | check + thumbnail, two decodes | check_and_thumbnail, one decode |")
    print("|---|---|---|---|")
    for size in ((1024, 1024), (3840, 2160)):
        data = realistic_image(size, "png", (200, 30, 30))
        old = per_image_ms(two_passes, data, args.repeat)
        new = per_image_ms(one_pass, data, args.repeat)
        print(f"| {size[0]}x{size[1]} PNG | {len(data) / 1e6:.1f} MB | {old:.1f} ms | {new:.1f} ms |")
    data = realistic_image((1024, 1024), "png", (200, 30, 30))
    alone = on_threads(data, 1, 2 * args.repeat)
    shared = on_threads(data, 2, args.repeat)
    print(
        f"\n{2 * args.repeat} 1024x1024 images: {alone:.2f} s on one thread, {shared:.2f} s on two "
        f"(speed-up {alone / shared:.2f}x; 2.0x would be perfect on two free cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
