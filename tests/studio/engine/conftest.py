from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A running fake OpenAI Images API; stopped after the test."""
    with FakeUpstream() as upstream:
        yield upstream
