"""Private files answered by views that have already checked access: never served from a public folder.

From an S3 bucket (django-storages), as `MEDIA_SERVE` says: a redirect to a presigned URL of the object that
expires in `MEDIA_URL_EXPIRE_SECONDS` (the bytes go from the bucket to the browser), or the object's bytes
streamed as they arrive. From the local folder (development), the file streamed. Streamed means read piece by
piece in a worker thread: under ASGI a plain iterator, and so a FileResponse, is read whole into memory first.
"""

from collections.abc import AsyncIterator, Generator, Iterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

CHUNK_BYTES = 256 * 1024


def file_response(
    request: HttpRequest,
    field: FieldFile,
    content_type: str,
    *,
    download_name: str | None = None,
    cache: str = "private, max-age=86400",
) -> HttpResponseBase:
    """The stored file, or 404 when it is gone from storage."""
    if not field:
        raise Http404
    disposition = (
        content_disposition_header(as_attachment=True, filename=download_name) if download_name else None
    )
    if in_bucket(field) and settings.MEDIA_SERVE == "redirect":
        parameters = {"ResponseContentType": content_type, "ResponseCacheControl": cache}
        if disposition:
            parameters["ResponseContentDisposition"] = disposition
        storage: Any = field.storage  # S3Storage.url takes the signed response's headers and the expiry
        url = storage.url(field.name, parameters=parameters, expire=settings.MEDIA_URL_EXPIRE_SECONDS)
        redirect = HttpResponseRedirect(url)
        # The browser may keep the redirect while the URL it names is still valid.
        redirect["Cache-Control"] = f"private, max-age={settings.MEDIA_URL_EXPIRE_SECONDS // 2}"
        return redirect
    handle, size = open_stored(field)
    response = StreamingHttpResponse(streamed(request, read_chunks(handle)), content_type=content_type)
    if size is not None:
        response["Content-Length"] = str(size)
    if disposition:
        response["Content-Disposition"] = disposition
    response["Cache-Control"] = cache
    return response


def in_bucket(field: FieldFile) -> bool:
    return hasattr(field.storage, "bucket_name")  # S3Storage and its subclasses


def open_stored(field: FieldFile) -> tuple[IO[bytes], int | None]:
    """The stored file open for reading in pieces, and its size when known; FileNotFoundError becomes 404.
    An S3 object's body is read as it arrives (the storage's own file would download it whole first)."""
    try:
        if in_bucket(field):
            return _open_object(field)
        handle = field.open("rb")
        return handle, field.size
    except FileNotFoundError as error:
        raise Http404 from error


def _open_object(field: FieldFile) -> tuple[IO[bytes], int | None]:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    storage: Any = field.storage
    try:
        found = storage.bucket.Object(storage._normalize_name(field.name)).get()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(field.name) from error
        raise
    return found["Body"], found.get("ContentLength")


def read_chunks(handle: IO[bytes]) -> Generator[bytes, None, None]:
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def streamed(
    request: HttpRequest, chunks: Generator[bytes, None, None]
) -> AsyncIterator[bytes] | Iterator[bytes]:
    """The chunks as the server wants them: under ASGI, taken one at a time in a worker thread."""
    if isinstance(request, ASGIRequest):
        return _from_worker_thread(chunks)
    return chunks


async def _from_worker_thread(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    def take() -> bytes | None:
        return next(chunks, None)

    read = sync_to_async(take, thread_sensitive=False)
    try:
        while (chunk := await read()) is not None:
            if chunk:
                yield chunk
    finally:
        chunks.close()
