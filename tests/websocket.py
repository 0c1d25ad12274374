"""A websocket client of the studio, authenticated by a real session cookie, as a browser would be."""

from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application


def session_headers(user) -> list[tuple[bytes, bytes]]:
    """Log the user in (synchronously: it touches the database) and return a browser's headers."""
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def communicator_for(headers: list[tuple[bytes, bytes]], workspace_id) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/studio/?workspace={workspace_id}", headers=headers)


async def receive_all(communicator: WebsocketCommunicator, *, quiet_for: float = 1.0) -> list[str]:
    """Every message until none comes for `quiet_for` seconds. (receive_from's own timeout would cancel
    the application, so wait with receive_nothing instead.)"""
    messages = []
    while not await communicator.receive_nothing(timeout=quiet_for):
        messages.append(await communicator.receive_from())
    return messages
