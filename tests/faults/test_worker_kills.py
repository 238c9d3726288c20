"""Workers SIGKILLed mid-batch, ten times in a row under a steady load, lose and duplicate nothing."""

import time

import pytest
from sqlalchemy import text

from tests.faults.conftest import wait_for_log
from tests.faults.load import Load, Tally
from tests.fixtures.activity import in_transaction, poll, waiting_for_lock

pytestmark = [pytest.mark.faults, pytest.mark.slow]

KILLS = 10


def test_worker_sigkilled_mid_batch_ten_times_loses_and_duplicates_nothing(
    fault_stack, start_web_process, start_worker_process, fault_summary
):
    _, url = start_web_process(fault_stack.env)
    engine = fault_stack.engine()
    names = [f"fault-worker-{n}" for n in range(KILLS + 1)]
    workers = [start_worker_process(fault_stack.worker_env(names[0]))]
    wait_for_log(workers[0], "ready.")
    kills = {"blocked before commit": 0, "inside a transaction": 0}

    with Load(url, fault_stack.api_key, rate=300, duration=90) as load, \
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
        for n in range(KILLS):
            # The next worker boots while this one works, so the queue is never long without a consumer.
            workers.append(start_worker_process(fault_stack.worker_env(names[n + 1])))
            if n % 2 == 0:
                # Deterministic: hold the sessions table, so the worker blocks inside its transaction
                # (its events inserted, not committed), and kill it there.
                with engine.connect() as holder:
                    holder.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
                    caught = poll(lambda n=n: waiting_for_lock(watch, names[n]), timeout=30, interval=0.02)
                    workers[n].kill()
                    holder.rollback()
                kills["blocked before commit"] += caught
            else:
                # A race: kill as soon as the worker is seen inside a transaction, which may be a hair
                # before or after its commit (the window where a message is stored but not acknowledged).
                caught = poll(lambda n=n: in_transaction(watch, names[n]), timeout=30, interval=0.002)
                workers[n].kill()
                kills["inside a transaction"] += caught
            assert caught, f"worker {n} was never seen mid-batch:\n{workers[n].log()[-3000:]}"
        load.stop()
    engine.dispose()

    accepted = set(load.accepted_ids)
    started = time.monotonic()
    stored = fault_stack.wait_until_stored(load.session_ids, accepted, timeout=60)
    drained = time.monotonic() - started
    time.sleep(1)  # anything still queued would show up now as an extra
    stored = fault_stack.stored_counts(load.session_ids)
    tally = Tally.of(load, stored)
    statuses = load.statuses()
    fault_summary(
        f"FAULT worker SIGKILL x{KILLS}: {tally.line()} | statuses {dict(statuses)} | "
        f"{load.events_per_second():.0f} events/s | kills {kills} | all stored {drained:.1f} s after the load"
    )

    assert sum(kills.values()) == KILLS
    # The API does not depend on the workers: no error at all, and a 503 (a publisher confirm slower
    # than 1.5 s on this shared 2-core machine) at most now and then.
    assert statuses.keys() <= {"202", "503"}, statuses
    assert statuses["503"] <= 0.01 * statuses.total(), statuses
    assert len(load.accepted_ids) == len(accepted), "an event_id was answered 202 twice"
    assert tally.lost == 0 and tally.duplicated == 0 and tally.extra == 0, tally
    # The load really ran through all the kills (about 300 events/s, kills spread over several seconds).
    assert tally.accepted > 1000
    # Sessions count each event once, whichever worker (or redelivery) stored it.
    assert fault_stack.session_totals(load.session_ids) == tally.stored
