# One image for the web process, the workers and the one-shot migration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/eye

COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY pyproject.toml README.md start-celery.sh ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-deps . && useradd --system --home /srv/eye eye && chown -R eye /srv/eye
USER eye

ENV FLASK_APP=app
EXPOSE 8000
# The launcher's gunicorn config (gthread, JSON logs, the lingering close of early refusals).
CMD ["gunicorn", "--config", "python:app.observability.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "64", "app:create_app()"]
