"""compose.yaml, as an operator starts it: the migrations once before anything serves, a health check for
every service, every long-running process restarted when it exits, one image for the studio's processes,
media in the bucket (no studio volume), and the processes together within PostgreSQL's max_connections."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
STUDIO = ("web", "worker", "beat")
ONCE = ("migrate", "bucket")


def test_long_running_services_are_restarted_and_one_shots_only_on_failure():
    for name, service in SERVICES.items():
        expected = ("on-failure",) if name in ONCE else ("unless-stopped", "always")
        assert service.get("restart") in expected, f"{name}: {service.get('restart')}"


def test_every_service_has_a_health_check():
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_migrations_run_once_before_web_worker_and_beat():
    assert SERVICES["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in STUDIO:
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert "migrate" not in " ".join(SERVICES[name].get("command", [])), name
    # The image's own command (the web process) no longer migrates at every start.
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
    assert "migrate" not in cmd and "daphne" in cmd


def test_the_studio_processes_share_one_image_and_keep_nothing_on_their_disk():
    assert len({SERVICES[name]["image"] for name in (*STUDIO, "migrate")}) == 1
    for name in (*STUDIO, "migrate"):
        assert not SERVICES[name].get("volumes"), f"{name} mounts a volume"
        environment = SERVICES[name]["environment"]
        assert environment["STUDIO_ENV"] == "production"
        assert environment["AWS_STORAGE_BUCKET_NAME"] and environment["AWS_S3_ENDPOINT_URL"]


def test_the_studio_processes_fit_in_postgres_connections():
    max_connections = int(SERVICES["postgres"]["command"][-1].split("=")[1])
    pools = [
        int(SERVICES[name]["environment"]["DB_POOL_MAX_SIZE"].strip("${}").split(":-")[1]) for name in STUDIO
    ]
    # Leave a fifth for migrations, the admin's shell and PostgreSQL's own reserved connections.
    assert sum(pools) <= max_connections * 0.8, (pools, max_connections)


def test_workers_are_given_time_to_finish_their_generations_when_stopped():
    assert SERVICES["worker"]["stop_grace_period"] == "15m"


NODE = yaml.safe_load((ROOT / "compose.node.yaml").read_text())["services"]


def test_another_node_runs_web_and_workers_only_on_the_shared_services():
    """No beat (one per deployment), no migrate (once), no database, Redis or bucket of its own."""
    assert set(NODE) == {"web", "worker"}
    for name, service in NODE.items():
        assert service["image"] == SERVICES[name]["image"]
        assert not service.get("volumes") and service["healthcheck"]["test"]
        environment = service["environment"]
        for required in (
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "STUDIO_ENCRYPTION_KEYS",
            "AWS_STORAGE_BUCKET_NAME",
        ):
            assert ":?" in environment[required], f"{name} must refuse to start without {required}"
    assert NODE["worker"]["stop_grace_period"] == SERVICES["worker"]["stop_grace_period"]
