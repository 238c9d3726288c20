"""Command line: `flask apps …` and `flask keys …` (keys are shown once, stored hashed),
`flask partitions …` (what the periodic maintenance task does, by hand), `flask errors replay` and
`flask broker move-to-quorum`."""

import re

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from app.identity import keys

apps_cli = AppGroup("apps", help="Applications that send events.")
keys_cli = AppGroup("keys", help="API keys of the applications.")
partitions_cli = AppGroup("partitions", help="Time partitions of the tables that grow, and retention.")
errors_cli = AppGroup("errors", help="The recorded refusals.")
broker_cli = AppGroup("broker", help="The RabbitMQ queues of The Eye.")


@apps_cli.command("create")
@click.argument("name")
def create_application(name: str) -> None:
    """Create an application."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}", name):
        raise click.ClickException("A name has 1 to 64 characters: letters, digits, '.', '_', '-' or spaces.")
    try:
        keys.create_application(name)
    except IntegrityError:
        raise click.ClickException(f"An application named {name!r} already exists.") from None
    click.echo(f"created application {name}")


@apps_cli.command("list")
def list_applications() -> None:
    """List applications and their keys (prefixes only)."""
    for application in keys.list_applications():
        click.echo(application.name)
        for key in application.keys:
            state = "revoked" if key.revoked_at else "active"
            click.echo(f"  {key.prefix}  {','.join(key.scopes)}  {state}")


@keys_cli.command("create")
@click.argument("application")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(keys.SCOPES), help="ingest, read or admin; repeat for several.")
def create_key(application: str, scopes: tuple[str, ...]) -> None:
    """Create a key; it is printed once and never again."""
    try:
        new = keys.create_key(application, list(scopes))
    except keys.KeyRequestError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"prefix: {new.prefix}")
    click.echo(f"scopes: {','.join(new.scopes)}")
    click.echo(f"key: {new.key}")
    click.echo("Store the key now: it cannot be shown again.", err=True)


@keys_cli.command("revoke")
@click.argument("prefix")
def revoke_key(prefix: str) -> None:
    """Revoke a key by its prefix."""
    if not keys.revoke_key(prefix):
        raise click.ClickException(f"No active key with prefix {prefix!r}.")
    click.echo(f"revoked {prefix}")


@partitions_cli.command("list")
def list_partitions() -> None:
    """Each partitioned table's partitions: range, rows (estimate) and size."""
    from app.maintenance import partitions  # pg-partsmith and pydantic: loaded when asked for

    rows = partitions.list_partitions()
    table_width = max((len(row["table"]) for row in rows), default=0)
    partition_width = max((len(row["partition"]) for row in rows), default=0)
    for row in rows:
        click.echo(f"{row['table']:<{table_width}} {row['partition']:<{partition_width}} {row['rows_estimate']:>12} rows "
                   f"{_size(row['bytes']):>9}  {row['bounds']}")


@partitions_cli.command("ensure")
def ensure_partitions() -> None:
    """Make the current and next partitions of every table, where missing."""
    from app.maintenance import partitions  # pg-partsmith and pydantic: loaded when asked for

    for outcome in partitions.ensure():
        for name in outcome.created:
            click.echo(f"created {name}")
        for note in outcome.notes:
            click.echo(f"{outcome.table}: {note}", err=True)


@partitions_cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Say what would go, change nothing.")
def prune_partitions(dry_run: bool) -> None:
    """Drop expired partitions; delete expired rows of DEFAULT partitions and expired sessions."""
    from app.maintenance import partitions  # pg-partsmith and pydantic: loaded when asked for

    verb = "would drop" if dry_run else "dropped"
    outcomes, sessions = partitions.prune(dry_run=dry_run)
    for outcome in outcomes:
        for name in outcome.dropped:
            click.echo(f"{verb} {name}")
        if outcome.default_rows_deleted:
            click.echo(f"{verb} {outcome.default_rows_deleted} expired rows of {outcome.table}_default")
        for note in outcome.notes:
            click.echo(f"{outcome.table}: {note}", err=True)
    click.echo(f"{verb} {sessions} expired sessions")


@errors_cli.command("replay")
@click.option("--kind", help="e.g. invalid_payload")
@click.option("--category")
@click.option("--name")
@click.option("--application", help="The sending application's name")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
              help="Received from (UTC)")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
              help="Received before (UTC)")
@click.option("--not-replayed", is_flag=True, help="Only refusals never replayed")
@click.option("--dry-run", is_flag=True, help="Count what would pass now; change nothing.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 1000),
              help="Refusals per round (one publish each)")
def replay_errors(kind, category, name, application, since, until, not_replayed, dry_run, batch) -> None:
    """Check recorded refusals again against the current schemas; send the ones that pass (as the API's
    POST /api/v1/errors/replay does). A replayed event is stored once, however often it is replayed."""
    from collections import Counter
    from datetime import UTC

    from sqlalchemy import func, select

    from app.extensions import db
    from app.ingest.publishing import BrokerUnavailable
    from app.ingest.replay import ReplayFilters, matching, replay

    filters = ReplayFilters(kind=kind, category=category, name=name, application=application,
                            since=since and since.replace(tzinfo=UTC), until=until and until.replace(tzinfo=UTC),
                            replayed=False if not_replayed else None)
    total = db.session.scalar(select(func.count()).select_from(matching(filters).order_by(None).subquery()))
    passing, failing, unreplayable, cursor = 0, Counter(), 0, None
    with click.progressbar(length=total, label="replaying" if not dry_run else "checking", file=None) as bar:
        while True:
            try:
                report = replay(filters, batch, dry_run, cursor)
            except BrokerUnavailable as exc:
                raise click.ClickException(f"the broker did not confirm ({exc}); what was replayed before this "
                                           "round is noted, run the command again (stored once)") from None
            passing += report.passing
            failing.update(report.still_failing)
            unreplayable += report.not_replayable
            bar.update(report.matched)
            cursor = report.next_cursor
            if cursor is None:
                break
    click.echo(f"{total} matched; {'would pass' if dry_run else 'replayed'} {passing}; "
               f"not replayable {unreplayable}; still failing {sum(failing.values())}"
               + "".join(f"\n  {kind_}: {count}" for kind_, count in failing.most_common()))


@broker_cli.command("move-to-quorum")
def move_queues_to_quorum() -> None:
    """Make the ingest and upkeep queues quorum queues, keeping every message they hold.

    Stop the web processes and the workers first (a queue with a consumer is refused); run it with
    EYE_QUEUE_TYPE=quorum, then start them with that setting. Safe to run again.
    """
    from flask import current_app

    from app.broker import connect, is_rabbitmq
    from app.broker.queue_move import QueueInUse, move_to_quorum

    config = current_app.config
    if config["EYE_QUEUE_TYPE"] != "quorum":
        raise click.ClickException("run it with EYE_QUEUE_TYPE=quorum (the setting the service will then run with)")
    celery = current_app.extensions["celery"]
    if not is_rabbitmq(celery.conf.broker_url):
        raise click.ClickException("the broker is not RabbitMQ: there is no queue type to change")
    queues = [celery.amqp.queues[name] for name in (config["EYE_QUEUE"], config["EYE_MAINTENANCE_QUEUE"])]

    def progress(name: str, count: int) -> None:
        if count % 1000 == 0:
            click.echo(f"  {name}: {count} messages moved", err=True)

    with celery.connection_for_write() as connection:
        connect(connection, config["EYE_PUBLISH_TIMEOUT"] * 5)
        try:
            moves = move_to_quorum(connection, queues, progress)
        except QueueInUse as exc:
            raise click.ClickException(str(exc)) from None
    for move in moves:
        done = {"classic": f"moved from a classic queue with its {move.moved} message(s)",
                "quorum": "already a quorum queue", "absent": "declared as a quorum queue"}[move.was]
        click.echo(f"{move.name}: {done}")


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def init_app(app: Flask) -> None:
    app.cli.add_command(apps_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(partitions_cli)
    app.cli.add_command(errors_cli)
    app.cli.add_command(broker_cli)
