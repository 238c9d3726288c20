"""Command line: `flask apps …` and `flask keys …` (keys are shown once, stored hashed)."""

import re

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from app.identity import keys

apps_cli = AppGroup("apps", help="Applications that send events.")
keys_cli = AppGroup("keys", help="API keys of the applications.")


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


def init_app(app: Flask) -> None:
    app.cli.add_command(apps_cli)
    app.cli.add_command(keys_cli)
