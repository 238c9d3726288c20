#!/usr/bin/env bash
# Start The Eye's Celery workers with the production options. Settings come from the environment
# (see contrib/env-sample); extra arguments are passed to `celery worker`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/celery ] && PATH="$PWD/.venv/bin:$PATH"

# `start-celery.sh beat` starts Celery beat instead, which sends the partition upkeep every
# EYE_MAINTENANCE_SECONDS (tasks/maintenance.py): run exactly one per deployment.
if [ "${1:-}" = "beat" ]; then
    shift
    exec celery -A tasks.worker beat \
        --loglevel "${EYE_LOG_LEVEL:-INFO}" \
        --schedule "${EYE_BEAT_SCHEDULE:-/tmp/eye-celerybeat-schedule}" \
        "$@"
fi

# TERM triggers Celery's warm shutdown: running tasks finish, unacknowledged messages go back to
# the queue (acks_late), so a redeploy loses nothing.
# It consumes the ingest queue (EYE_QUEUE) and the upkeep's (EYE_MAINTENANCE_QUEUE), both named by the settings.
exec celery -A tasks.worker worker \
    --concurrency "${EYE_WORKER_CONCURRENCY:-2}" \
    --loglevel "${EYE_LOG_LEVEL:-INFO}" \
    --hostname "${EYE_WORKER_NAME:-eye-worker}@%h" \
    --without-gossip --without-mingle \
    "$@"
