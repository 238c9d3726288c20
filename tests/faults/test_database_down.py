"""PostgreSQL stopped for 10 s under a steady load: events wait in RabbitMQ, workers retry with
back-off, and every accepted event is stored once the database is back."""

import re
import time

import pytest
from sqlalchemy import text

from tests.faults.conftest import TASK_FAILED, sleep_until, wait_for_log
from tests.faults.load import Load, Tally
from tests.fixtures.activity import poll, waiting_for_lock

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE = 10.0
# Workers retry with back-off capped at 30 s (tasks/ingest.py): after the database returns, the
# backlog must be stored within one capped back-off plus a margin for a loaded 2-core machine.
MAX_DRAIN_SECONDS = 45.0
RETRY_LOG = re.compile(r"database unavailable \(\w+\), retrying \(attempt (\d+)\)")

def test_database_stopped_mid_batch_for_ten_seconds_loses_nothing(
    fault_stack, start_web_process, start_worker_process, fault_summary
):
    _, url = start_web_process(fault_stack.env)
    worker_name = "fault-db-worker"
    worker = start_worker_process(fault_stack.worker_env(worker_name))
    wait_for_log(worker, "ready.")
    engine = fault_stack.engine()

    with Load(url, fault_stack.api_key, rate=300, duration=60) as load:
        time.sleep(4)
        # Stop it while a worker is inside a batch, as a real outage would sooner or later: hold the
        # sessions table so the worker waits mid-statement, then stop. A fast stop SIGTERMs every
        # backend; the worker's gets it first here, so the release of our lock cannot let it through.
        with engine.connect() as holder, engine.connect() as watch:
            holder.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
            caught = poll(lambda: waiting_for_lock(watch, worker_name), timeout=30, interval=0.02)
            stopping = time.monotonic()
            watch.execute(text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                               "WHERE application_name = :name AND wait_event_type = 'Lock'"), {"name": worker_name})
            fault_stack.postgres.stop("fast")
            down = time.monotonic()
            for connection in (holder, watch):
                connection.invalidate()  # the stop ended them: nothing to roll back
        sleep_until(down + OUTAGE)
        back = fault_stack.postgres.start()
        sleep_until(back + 3)
        load.stop()
    engine.dispose()

    # Everything accepted up to the database's return was waiting in RabbitMQ (or in a worker's retry).
    backlog = load.accepted_by(back)
    task_failed = lambda: TASK_FAILED in worker.log()  # noqa: E731 - its events will never come
    stored = fault_stack.wait_until_stored(load.session_ids, backlog, MAX_DRAIN_SECONDS + 5, task_failed)
    backlog_drained = time.monotonic() - back
    accepted = set(load.accepted_ids)
    stored = fault_stack.wait_until_stored(load.session_ids, accepted, 15, task_failed)
    all_drained = time.monotonic() - back
    time.sleep(1)  # anything still queued would show up now as an extra
    stored = fault_stack.stored_counts(load.session_ids)
    tally = Tally.of(load, stored)

    during_outage = [a for a in load.answers if down <= a.sent_at and a.answered_at <= back]
    accepted_during = sum(a.events for a in during_outage if a.status == 202)
    log = worker.log()
    retries = [int(n) for n in RETRY_LOG.findall(log)]
    drained = (f"backlog of {len(backlog)} stored {backlog_drained:.1f} s after its return, all {all_drained:.1f} s"
               if accepted <= stored.keys() else f"NOT all stored ({'a task failed' if task_failed() else 'timed out'})")
    fault_summary(
        f"FAULT PostgreSQL down {back - down:.1f} s (stop took {down - stopping:.2f} s, a worker mid-batch: "
        f"{caught}): {tally.line()} | statuses {dict(load.statuses())} | {accepted_during} events accepted "
        f"while it was down | {drained} | task retries {len(retries)}, deepest attempt {max(retries, default=0)}"
    )

    # What the scenario needs, checked before the outage: without it the outage proves nothing.
    if not caught or not during_outage:
        pytest.fail(f"the scenario did not happen: worker seen mid-batch {caught}, "
                    f"{len(during_outage)} requests while the database was down")
    assert TASK_FAILED not in log, "a task failed and was acknowledged: its events are lost"
    # Workers kept retrying, with back-off, instead of giving up or calling the messages poison.
    assert max(retries, default=0) >= 2, log[-3000:]
    assert "cannot be stored as a whole" not in log
    assert not fault_stack.rejections(), "a database outage must not be recorded as rejected events"
    assert tally.lost == 0 and tally.duplicated == 0 and tally.extra == 0, tally
    assert backlog_drained < MAX_DRAIN_SECONDS
    assert fault_stack.session_totals(load.session_ids) == tally.stored


def test_api_keeps_accepting_events_while_the_database_is_down(
    fault_stack, start_web_process, start_worker_process, fault_summary
):
    _, url = start_web_process(fault_stack.env)
    worker = start_worker_process(fault_stack.env)
    wait_for_log(worker, "ready.")
    # The key is known and cached before the outage, as for any application already sending.
    warm = Load(url, fault_stack.api_key, rate=50, threads=2, duration=2).run()
    if set(warm.statuses()) != {"202"}:  # the outage proves nothing without this
        pytest.fail(f"the service was not accepting before the outage: {dict(warm.statuses())}")

    fault_stack.postgres.stop("fast")
    try:
        time.sleep(3)  # past the key cache's 2 s (EYE_KEY_CACHE_SECONDS), as in any outage that lasts
        load = Load(url, fault_stack.api_key, rate=100, threads=2, duration=3).run()
    finally:
        back = fault_stack.postgres.start()
    stored = fault_stack.wait_until_stored(load.session_ids, set(load.accepted_ids), timeout=MAX_DRAIN_SECONDS)
    statuses = load.statuses()
    fault_summary(
        f"FAULT PostgreSQL down, ingest answers: {dict(statuses)} | "
        f"{len(load.accepted_ids)} accepted, {len(stored)} stored {time.monotonic() - back:.1f} s after its return"
    )

    if not load.answers:
        pytest.fail("no request was made while the database was down")
    assert set(statuses) == {"202"}, "with the database down, events must still be accepted (they wait in RabbitMQ)"
    assert set(load.accepted_ids) <= stored.keys()
