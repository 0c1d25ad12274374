"""A real S3 server on 127.0.0.1 (moto in server mode), and the settings that point the studio's media at a
bucket of it, as production's environment does."""

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import httpx

REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "studio-test", "aws_secret_access_key": "studio-test-secret"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def s3_server() -> Iterator[str]:
    """Moto's S3 server in a process of its own (what a test measures of this one is the studio's alone), on a
    free port of 127.0.0.1; yields its endpoint URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


def bucket_settings(endpoint: str, *, prefix: str = "studio/") -> dict:
    """A new private bucket on the server, and the settings (as config/settings.py derives them from the
    AWS_* variables) that store media in it."""
    bucket = f"studio-{uuid.uuid4().hex[:12]}"
    client(endpoint).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {
        "STORAGES": {
            "default": {"BACKEND": "storages.backends.s3.S3Storage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_LOCATION": prefix,
        "AWS_DEFAULT_ACL": "private",
        "AWS_QUERYSTRING_AUTH": True,
        "AWS_QUERYSTRING_EXPIRE": 300,
        "AWS_S3_FILE_OVERWRITE": False,
        "AWS_S3_SIGNATURE_VERSION": "s3v4",
        "AWS_S3_MAX_MEMORY_SIZE": 16 * 1024 * 1024,
        "MEDIA_SERVE": "redirect",
        "MEDIA_URL_EXPIRE_SECONDS": 300,
    }


def keys(endpoint: str, bucket: str) -> list[str]:
    found = client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in found)
