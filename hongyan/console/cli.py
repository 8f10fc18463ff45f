"""``hongyan operator``: the platform staff who sign in to the console's operator pages."""
from __future__ import annotations

import secrets

import click

from hongyan.core.accounts import AdminError

from . import auth


def _admin(fn, *args):
    """Run ``fn(conn, *args)`` in one transaction on the configured database."""
    engine = click.get_current_context().obj.engine()   # the `hongyan` group's Ctx
    try:
        with engine.begin() as conn:
            return fn(conn, *args)
    except (AdminError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()


@click.group("operator")
def operator_group() -> None:
    """Console operators (platform staff)."""


@operator_group.command("create")
@click.argument("username")
@click.option("--password", default=None, help="Default: a new random password, printed once.")
def create(username: str, password: str | None) -> None:
    """Create an operator who can sign in at /console/."""
    shown = password is None
    password = password or secrets.token_urlsafe(12)
    _admin(auth.create_operator, username, password)
    click.echo(f"operator {username} created")
    if shown:
        click.echo(f"  password: {password}")


@operator_group.command("set-password")
@click.argument("username")
@click.password_option(help="The new password (asked for when not given).")
def set_password(username: str, password: str) -> None:
    """Change an operator's password; their open console sessions end."""
    _admin(auth.set_operator_password, username, password)
    click.echo(f"password of operator {username} changed")
