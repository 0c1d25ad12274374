"""compose.yaml, as an operator starts it: every process is restarted when it exits, and the studio's
processes together stay within PostgreSQL's max_connections."""

from pathlib import Path

import yaml

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "compose.yaml").read_text())
STUDIO = ("web", "worker", "beat")


def test_every_service_is_restarted_when_it_exits():
    for name, service in COMPOSE["services"].items():
        assert service.get("restart") in ("unless-stopped", "always"), f"{name} is not restarted"


def test_the_studio_processes_fit_in_postgres_connections():
    services = COMPOSE["services"]
    max_connections = int(services["postgres"]["command"][-1].split("=")[1])
    pools = [
        int(services[name]["environment"]["DB_POOL_MAX_SIZE"].strip("${}").split(":-")[1]) for name in STUDIO
    ]
    # Leave a fifth for migrations, the admin's shell and PostgreSQL's own reserved connections.
    assert sum(pools) <= max_connections * 0.8, (pools, max_connections)


def test_web_worker_and_beat_run_one_image():
    assert len({COMPOSE["services"][name]["image"] for name in STUDIO}) == 1
