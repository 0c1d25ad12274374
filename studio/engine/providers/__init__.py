"""Upstream image engines. Each turns a GenerationSpec and input images into a stream of events.

No Django models or requests in here: a provider gets plain values and yields plain values.
"""

from studio.engine.providers.base import (
    AccountUnavailable,
    Completed,
    FinalImage,
    InputImage,
    PartialImage,
    Provider,
    ProviderError,
    Rejected,
    Transient,
    Usage,
)


def get_provider(name: str) -> Provider:
    if name == "local":
        from django.conf import settings

        from studio.engine.providers.local import LocalProvider

        return LocalProvider(step_seconds=settings.LOCAL_PROVIDER_STEP_SECONDS)
    if name == "openai":
        from studio.engine.providers.openai import OpenAIProvider

        return OpenAIProvider.from_settings()
    raise ValueError(f"Unknown provider {name!r}")


__all__ = [
    "AccountUnavailable",
    "Completed",
    "FinalImage",
    "InputImage",
    "PartialImage",
    "Provider",
    "ProviderError",
    "Rejected",
    "Transient",
    "Usage",
    "get_provider",
]
