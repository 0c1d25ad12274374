"""The gallery of a big workspace: 20,000 images, timed page by page.

Builds a throwaway database with one team workspace of `--images` (20,000) images: three authors, six
projects, generations of one to four images spread over a year, a thousand favourites, a few hundred failed
generations and prompts drawn from a small vocabulary (so a search matches about one image in twenty). Rows
are made with `bulk_create`; every image shares one tiny thumbnail file, which the page never reads anyway.

Then it requests each page `--requests` (50) times through Django's test client, in process, as the owner:
the first page, a deep page (the cursor of the 10,000th image), the next page as infinite scroll asks for it,
a search, filters (project and author; favourites; a date range; failed generations), the image page and the
prompt history. It prints a markdown table with p50 and p95 in milliseconds, the queries of one request, and
the tiles shown, and exits non-zero if a page's query count differs from the first page's by more than the
filter it adds, or if a gallery page links an original instead of a thumbnail.

    .venv/bin/python benches/gallery.py                      # SQLite, a temporary file (default)
    .venv/bin/python benches/gallery.py --postgres           # a throwaway studio_bench_gallery_<random>
                                                             # on postgres://postgres@127.0.0.1:5432
    .venv/bin/python benches/gallery.py --postgres postgres://user:pass@host:5432/any

docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
# Prompts are drawn from these, so each word of ADJECTIVES and SUBJECTS is in about 1 in 12 or 20 prompts.
ADJECTIVES = ["quiet", "bright", "misty", "golden", "rusty", "frozen"]
ADJECTIVES += ["tiny", "giant", "ancient", "neon", "velvet", "paper"]
SUBJECTS = ["lighthouse", "fox", "whale", "teapot", "robot", "garden", "city", "forest", "harbour", "castle"]
SUBJECTS += [
    "bicycle",
    "owl",
    "cathedral",
    "market",
    "mountain",
    "orchard",
    "library",
    "tram",
    "desert",
    "violin",
]
SETTINGS = [
    "at dawn",
    "at night",
    "in the rain",
    "under snow",
    "at noon",
    "by candlelight",
    "in fog",
    "at sunset",
]
STYLES = [
    "oil painting",
    "watercolour",
    "35mm photo",
    "isometric render",
    "ink sketch",
    "poster",
    "studio photo",
]
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _postgres_database(server_url: str) -> tuple[str, callable]:
    import psycopg

    parts = urlsplit(server_url)
    name = f"studio_bench_gallery_{uuid.uuid4().hex[:8]}"
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    admin_url = urlunsplit((scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), drop


def _prompt(rng: random.Random) -> str:
    return f"a {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} {rng.choice(SETTINGS)}, {rng.choice(STYLES)}"


def populate(count: int, *, seed: int = 7) -> dict:
    """The workspace and its rows; returns what the scenarios need."""
    from django.contrib.auth.hashers import make_password
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Membership, Role, User, Workspace
    from studio.engine.images import thumbnail
    from studio.engine.spec import GenerationSpec
    from studio.models import Favourite, Generation, Image, Project, Source, Status
    from tests.conftest import png_bytes

    rng = random.Random(seed)
    password = make_password("bench password")  # hashed once, not once per user
    people = User.objects.bulk_create(
        User(username=name, email=f"{name}@example.com", password=password) for name in ("ana", "ben", "cleo")
    )
    owner = people[0]
    workspace = Workspace.objects.create(name="Big team", slug="big-team", created_by=owner)
    Membership.objects.bulk_create(
        Membership(workspace=workspace, user=person, role=Role.OWNER if person == owner else Role.EDITOR)
        for person in people
    )
    projects = [Project.default_for(workspace)] + [
        Project.objects.create(workspace=workspace, name=name)
        for name in ("Posters", "Covers", "Stories", "Banners", "Sketches")
    ]
    thumb_name = default_storage.save("thumbnails/bench.webp", ContentFile(thumbnail(png_bytes((64, 64)))))
    file_name = default_storage.save("images/bench.png", ContentFile(png_bytes((64, 64))))
    spec = GenerationSpec.build(prompt="x").to_dict()

    now = timezone.now()
    year = timedelta(days=365).total_seconds()
    # The real creation times are spread over a year; auto_now_add would stamp them all "now".
    for model in (Generation, Image):
        model._meta.get_field("created_at").auto_now_add = False
    generations, images, made = [], [], 0
    while made < count:
        created = now - timedelta(seconds=rng.random() * year)
        n = min(rng.choice((1, 1, 1, 2, 4)), count - made)
        generation = Generation(
            workspace=workspace,
            project=rng.choice(projects),
            author=rng.choice(people),
            source=rng.choice((Source.PAGE, Source.PAGE, Source.PAGE, Source.API, Source.SJINN)),
            prompt=_prompt(rng),
            spec={**spec, "n": n},
            provider="local",
            cost=100 * n,
            status=Status.SUCCEEDED,
            created_at=created,
            started_at=created,
            finished_at=created + timedelta(seconds=20),
            usage={"input_tokens": 40, "output_tokens": 4160 * n, "total_tokens": 40 + 4160 * n},
            result_size="1024x1024",
            result_quality="medium",
            result_format="png",
        )
        generations.append(generation)
        for index in range(n):
            images.append(
                Image(
                    generation=generation,
                    workspace=workspace,
                    index=index,
                    file=file_name,
                    thumbnail=thumb_name,
                    width=1024,
                    height=1024,
                    format="png",
                    bytes=1_500_000,
                    created_at=created + timedelta(seconds=20, microseconds=index),
                )
            )
        made += n
    failed = [
        Generation(
            workspace=workspace,
            project=rng.choice(projects),
            author=rng.choice(people),
            prompt=_prompt(rng),
            spec=spec,
            provider="local",
            cost=100,
            status=Status.FAILED,
            error="The upstream refused the prompt (moderation).",
            created_at=now - timedelta(seconds=rng.random() * year),
        )
        for _ in range(max(1, count // 40))
    ]
    with transaction.atomic():
        Generation.objects.bulk_create(generations + failed, batch_size=2000)
        Image.objects.bulk_create(images, batch_size=2000)
        Favourite.objects.bulk_create(
            (Favourite(user=owner, image=image) for image in rng.sample(images, min(1000, len(images)))),
            batch_size=2000,
        )
    for model in (Generation, Image):
        model._meta.get_field("created_at").auto_now_add = True
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum (PostgreSQL) or `PRAGMA optimize` would have done by now
    ordered = list(Image.objects.filter(workspace=workspace).order_by("-created_at", "-id").values_list("pk"))
    return {
        "owner": owner,
        "editor": people[1],
        "workspace": workspace,
        "project": projects[1],
        "images": len(images),
        "generations": len(generations),
        "failed": len(failed),
        "deep_image": Image.objects.get(pk=ordered[min(10_000, len(ordered) - 1)][0]),
        "some_image": Image.objects.get(pk=ordered[len(ordered) // 3][0]),
        "now": now,
    }


def scenarios(world: dict) -> list[tuple[str, str, dict]]:
    from studio.web.gallery import _cursor_of

    deep = _cursor_of(world["deep_image"])
    month_end = world["now"].date() - timedelta(days=60)
    month_start = month_end - timedelta(days=30)
    htmx = {"HX-Request": "true", "HX-Target": "gallery-more"}
    return [
        ("first page", "/gallery/", {}),
        ("deep page (after 10,000 images)", f"/gallery/?cursor={deep}", {}),
        ("next page, infinite scroll (htmx)", f"/gallery/?cursor={deep}", htmx),
        ("search `lighthouse`", "/gallery/?q=lighthouse", {}),
        ("search two words `misty harbour`", "/gallery/?q=misty+harbour", {}),
        (
            "filter project + author",
            f"/gallery/?project={world['project'].pk}&author={world['editor'].pk}",
            {},
        ),
        ("filter favourites", "/gallery/?favourites=on", {}),
        ("filter 30-day range", f"/gallery/?date_from={month_start}&date_to={month_end}", {}),
        ("filter status failed", "/gallery/?status=failed", {}),
        ("image page", f"/images/{world['some_image'].pk}/view/", {}),
        ("prompt history", "/history/", {}),
    ]


def measure(client, url: str, headers: dict, requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    query_count = len(queries)  # now: the next request clears the log the context reads from
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    html = response.content.decode()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": timings[max(0, round(0.95 * len(timings)) - 1)],
        "queries": query_count,
        "tiles": len(re.findall(r'<li class="tile', html)),
        "kilobytes": len(html) / 1024,
        "originals": re.findall(rf'"/images/{UUID_PATTERN}/(?:\?[^"]*)?"', html)
        if "/gallery/" in url
        else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="images in the workspace (20,000)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page (50)")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES,
        help="use a throwaway PostgreSQL database on this server (default: DATABASE_URL, else "
        f"{DEFAULT_POSTGRES}) instead of a temporary SQLite file",
    )
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-bench-gallery-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        os.environ["STUDIO_DATA_DIR"] = str(data_dir)
        os.environ["MEDIA_ROOT"] = str(data_dir / "media")
        if args.postgres:
            database_url, drop = _postgres_database(args.postgres)
            stack.callback(drop)
            database = "PostgreSQL"
        else:
            database_url = f"sqlite:///{data_dir / 'bench.sqlite3'}"
            database = "SQLite"
        os.environ["DATABASE_URL"] = database_url
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client, override_settings

        stack.enter_context(
            override_settings(
                ALLOWED_HOSTS=["testserver"],
                STORAGES={
                    "default": {
                        "BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": data_dir / "media"},
                    },
                    # No collectstatic here: plain static URLs, as in the tests.
                    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
                },
            )
        )
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        world = populate(args.images)
        print(
            f"Made {world['images']:,} images in {world['generations']:,} generations "
            f"(+{world['failed']:,} failed) in {time.perf_counter() - started:.1f} s on {database} "
            f"{connection.Database.sqlite_version if database == 'SQLite' else connection.pg_version}.",
            file=sys.stderr,
        )

        client = Client()
        client.force_login(world["owner"])
        session = client.session
        session["workspace_id"] = world["workspace"].pk
        session.save()
        for _ in range(3):  # warm up: imports, template loading, the database's caches
            client.get("/gallery/")

        rows, problems = [], []
        for name, url, headers in scenarios(world):
            result = measure(client, url, headers, args.requests)
            rows.append((name, url, result))
            if result["originals"]:
                problems.append(f"{name}: links originals {result['originals'][:2]}")
        first = rows[0][2]["queries"]
        for name, url, result in rows:
            # A filter may add or save the one query that validates it; nothing may grow with the data.
            if url.startswith("/gallery/") and abs(result["queries"] - first) > 1:
                problems.append(f"{name}: {result['queries']} queries, the first page makes {first}")

        print(
            f"\n{world['images']:,} images, {database}, {args.requests} requests per page "
            f"(Django test client, in process)\n"
        )
        print("| Page | p50 ms | p95 ms | Queries | Tiles | HTML KiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, _url, result in rows:
            print(
                f"| {name} | {result['p50']:.1f} | {result['p95']:.1f} | {result['queries']} | "
                f"{result['tiles']} | {result['kilobytes']:.0f} |"
            )
        for problem in problems:
            print(f"PROBLEM: {problem}", file=sys.stderr)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
