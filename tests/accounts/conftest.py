import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(fast_password_hashing):
    """Every account test makes users; none hands them to another process."""
