"""Secrets kept encrypted at rest (the webhook signing secrets of API keys): Fernet, with the keys of
ENCRYPTION_KEYS (STUDIO_ENCRYPTION_KEYS). The first key encrypts and every key decrypts, so a key is
rotated by putting a new one first; `reencrypt` then moves a stored secret onto it."""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(ValueError):
    """A stored secret that none of the configured keys decrypts (a key was dropped too early)."""


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(text: str) -> str:
    return _current().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("No configured encryption key reads this secret.") from error


def reencrypt(token: str) -> str:
    """The same secret, encrypted with the first key."""
    return _current().rotate(token.encode()).decode()
