"""Command line: `flask apps …` and `flask keys …` (keys are shown once, stored hashed), and
`flask partitions …` (what the periodic maintenance task does, by hand)."""

import re

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from app.identity import keys

apps_cli = AppGroup("apps", help="Applications that send events.")
keys_cli = AppGroup("keys", help="API keys of the applications.")
partitions_cli = AppGroup("partitions", help="Time partitions of the tables that grow, and retention.")


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

    for row in partitions.list_partitions():
        click.echo(f"{row['table']:<15} {row['partition']:<30} {row['rows_estimate']:>12} rows "
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
