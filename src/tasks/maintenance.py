"""The periodic upkeep task: partitions made ahead of need, expired data dropped.

Sent by Celery beat every EYE_MAINTENANCE_SECONDS (tasks/celery_app.py); runs in a worker like any
task. Two runs at once are safe: pg-partsmith takes an advisory lock per table, and every step is
idempotent.
"""

import logging

from celery import shared_task

from app.maintenance import partitions

log = logging.getLogger(__name__)

MAINTAIN_PARTITIONS_TASK = "eye.maintain_partitions"


@shared_task(name=MAINTAIN_PARTITIONS_TASK, ignore_result=True)
def maintain_partitions() -> dict:
    created = [name for outcome in partitions.ensure() for name in outcome.created]
    outcomes, sessions = partitions.prune()
    dropped = [name for outcome in outcomes for name in outcome.dropped]
    rows = sum(outcome.default_rows_deleted for outcome in outcomes)
    notes = [f"{outcome.table}: {note}" for outcome in outcomes for note in outcome.notes]
    log.info("partitions maintained", extra={"created": created, "dropped": dropped,
                                             "expired_default_rows": rows, "expired_sessions": sessions})
    for note in notes:
        log.warning("partition upkeep: %s", note)
    return {"created": created, "dropped": dropped, "expired_default_rows": rows, "expired_sessions": sessions}
