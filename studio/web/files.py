"""Private files answered by views that have already checked access: never served from a public folder."""

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404


def file_response(
    field: FieldFile,
    content_type: str,
    *,
    download_name: str | None = None,
    cache: str = "private, max-age=86400",
) -> FileResponse:
    """The stored file, or 404 when it is gone from storage."""
    if not field:
        raise Http404
    try:
        handle = field.open("rb")
    except FileNotFoundError as error:
        raise Http404 from error
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=download_name is not None,
        filename=download_name or "",
    )
    response["Cache-Control"] = cache
    return response
