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

# The web process; the worker, beat and the one-off `migrate` override this command (compose.yaml runs the
# migrations once, as a service of their own, before any web or worker starts: never at every start). A
# listen backlog of 1,024 (Twisted's default is 50) so that a burst of new connections waits in the kernel
# instead of being dropped.
CMD ["daphne", "-e", "tcp:port=8000:interface=0.0.0.0:backlog=1024", "config.asgi:application"]
