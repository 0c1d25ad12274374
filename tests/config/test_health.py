def test_healthz_says_the_process_is_up(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_redis_and_broker(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_readyz_names_a_failing_redis_and_stays_ready_degraded(client, db, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"


def test_readyz_is_unavailable_without_the_database(client, db, monkeypatch):
    from config import health

    def broken():
        raise ConnectionError("database down")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_readyz_reports_a_broken_broker(client, db, monkeypatch):
    from config import health

    def broken():
        raise ConnectionError("broker down")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["failing"] == ["broker"]
    assert response.json()["status"] == "degraded"
