# One image for the web process, the workers and the one-shot migration.

# The native speed-ups (requirements-native.txt) come as source: built into wheels here, with a
# compiler the final image does not carry.
FROM python:3.11-slim AS native-wheels
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY requirements-native.txt ./
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels -r requirements-native.txt

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/eye

COPY requirements.txt requirements-native.txt ./
COPY --from=native-wheels /wheels /tmp/wheels
RUN pip install -r requirements.txt \
    && pip install --no-index --find-links /tmp/wheels -r requirements-native.txt && rm -rf /tmp/wheels
COPY pyproject.toml README.md start-celery.sh ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-deps . && useradd --system --home /srv/eye eye && chown -R eye /srv/eye
USER eye

ENV FLASK_APP=app
EXPOSE 8000
# The launcher's gunicorn config (gthread, JSON logs, the lingering close of early refusals).
CMD ["gunicorn", "--config", "python:app.observability.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "64", "app:create_app()"]
