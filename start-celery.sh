#!/usr/bin/env bash
# Start The Eye's Celery workers with the production options. Settings come from the environment
# (see contrib/env-sample); extra arguments are passed to `celery worker`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/celery ] && PATH="$PWD/.venv/bin:$PATH"

# TERM triggers Celery's warm shutdown: running tasks finish, unacknowledged messages go back to
# the queue (acks_late), so a redeploy loses nothing.
exec celery -A tasks.worker worker \
    --queues "${EYE_QUEUE:-eye.events}" \
    --concurrency "${EYE_WORKER_CONCURRENCY:-2}" \
    --loglevel "${EYE_LOG_LEVEL:-INFO}" \
    --hostname "${EYE_WORKER_NAME:-eye-worker}@%h" \
    --without-gossip --without-mingle \
    "$@"
