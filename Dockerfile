# One image for web, worker and beat; compose.yaml picks the command.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STUDIO_DATA_DIR=/data

WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY . .
RUN useradd --create-home --uid 10001 studio \
    && mkdir -p /data \
    && chown -R studio:studio /data \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chown -R studio:studio /data

USER studio
EXPOSE 8000

# The web process; the worker and beat override this command.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec daphne -b 0.0.0.0 -p 8000 config.asgi:application"]
