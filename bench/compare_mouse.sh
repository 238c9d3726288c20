#!/usr/bin/env bash
# Live dashboard pages, two commits alternated A B A B (docs/benchmarks.md, "Live mouse metrics").
#
#   git worktree add --detach /tmp/bench/A <before>; git worktree add --detach /tmp/bench/B <after>
#   bench/compare_mouse.sh /tmp/bench/A /tmp/bench/B "20 25 30 40" 2
#
# Each run gets a fresh database, queue and Socket.IO channel, and the service as that section runs
# it: one web process (gunicorn gthread, 256 threads; WEB_PROCESSES for more) and one Celery worker
# (--pool threads, --concurrency 8), each commit's own source through PYTHONPATH, on the PostgreSQL
# and RabbitMQ of ADMIN_URL and BROKER_URL. The same bench/mouse.py (this tree's) drives every run:
# DURATION (20) s counted after WARMUP (5) s of warm-up. Prints one JSON line per run and writes
# them to OUT.
set -euo pipefail

tree_a=$1 tree_b=$2 pages=${3:-"20 25 30"} rounds=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
bin=$(dirname "$python")
admin_url=${ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
broker_url=${BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}
port=${PORT:-8123}
duration=${DURATION:-20} warmup=${WARMUP:-5}
# WEB_PROCESSES=2: two gunicorn processes on the port (Socket.IO then over WebSocket only, which is
# what mouse.py's pages use), as `make run` runs them with EYE_WEB_PROCESSES=2.
web_processes=${WEB_PROCESSES:-1}
out=${OUT:-$here/results/compare-mouse-$(date +%s).jsonl}
mkdir -p "$(dirname "$out")"

run_one() {  # label tree pages round
    local label=$1 tree=$2 n=$3 round=$4
    local name="eye_cmp_mouse_${label,,}_${n}_${round}_$RANDOM"
    local database_url="${admin_url%/*}/$name"
    psql "$admin_url" -qc "CREATE DATABASE \"$name\""
    export PYTHONPATH=$tree/src DATABASE_URL=$database_url CELERY_BROKER_URL=$broker_url EYE_QUEUE=$name \
        EYE_SOCKETIO_CHANNEL=$name-sio SECRET_KEY=bench-secret EYE_LOG_LEVEL=WARNING \
        EYE_TOKEN_RATE_LIMIT=100000/minute EYE_QUEUE_TYPE=${EYE_QUEUE_TYPE:-classic} \
        EYE_WEB_PROCESSES=$web_processes
    (cd "$tree" && "$bin/flask" --app 'app:create_app()' db upgrade >/dev/null 2>&1)
    setsid "$bin/celery" -A tasks.worker worker --pool threads --concurrency 8 --without-gossip \
        --without-mingle --without-heartbeat -n "$name@%h" --loglevel WARNING >/dev/null 2>&1 &
    local worker=$!
    setsid "$bin/gunicorn" -c python:app.observability.gunicorn_conf --bind "127.0.0.1:$port" \
        --workers "$web_processes" --threads 256 'app:create_app()' >/dev/null 2>&1 &
    local web=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    sleep 2
    local figures result="/tmp/$name.json"
    # Exit 1 means some batch failed or none came back: the figures still say how.
    "$python" "$here/mouse.py" --url "http://127.0.0.1:$port" --pages "$n" --duration "$duration" --warmup "$warmup" \
        --json "$result" >/dev/null 2>&1 || true
    figures=$("$python" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$result" \
        2>/dev/null || echo '{}')
    rm -f "$result"
    echo "{\"commit\": \"$label\", \"pages\": $n, \"round\": $round, \"figures\": $figures}" | tee -a "$out"
    # The worker holds nothing worth keeping (its queue is deleted below); the web stops gracefully.
    kill -KILL -- -"$worker" 2>/dev/null || true
    kill -TERM -- -"$web" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$web" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- -"$web" 2>/dev/null || true
    wait "$web" "$worker" 2>/dev/null || true
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)"
    "$python" "$here/broker_cleanup.py" "$broker_url" --queue "$name" --queue "$name.maintenance" \
        --exchange "$name" --exchange "$name.maintenance" --exchange "$name-sio"
}

for round in $(seq "$rounds"); do
    for n in $pages; do
        run_one A "$tree_a" "$n" "$round"
        run_one B "$tree_b" "$n" "$round"
    done
done
echo "json lines: $out"
