"""Requests that wait for their image (the OpenAI dialect's) hold no database connection while they wait."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from django.conf import settings

from accounts.models import ApiKey
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.studio.api.conftest import serving_studio

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="the connection pool is PostgreSQL's",
    ),
]


def test_more_waiting_requests_than_the_pool_has_connections(
    alice, settings, private_media_root, task_queue, worker
):
    # Each image takes a few seconds; the web process may hold two connections and waits at most 1 s for one.
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.4
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="tests")
    pool = {"DB_POOL_MAX_SIZE": "2", "DB_POOL_MIN_SIZE": "1", "DB_POOL_TIMEOUT": "1"}
    with serving_studio(
        Path(private_media_root).parent, task_queue, MEDIA_ROOT=str(private_media_root), **pool
    ) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=60)

        def generate(number: int) -> str:
            answer = client.images.generate(prompt=f"a kite {number}", size="1024x1024", quality="low")
            return answer.data[0].b64_json or ""

        with ThreadPoolExecutor(6) as threads:
            images = list(threads.map(generate, range(6)))

    assert all(len(image) > 100 for image in images)
    assert Generation.objects.filter(status=Status.SUCCEEDED).count() == 6
