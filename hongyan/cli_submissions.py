"""``hongyan submission``: look after submissions already accepted (cancel what has not gone out)."""
from __future__ import annotations

import click
from sqlalchemy import select

from hongyan.core import accounts as acc
from hongyan.core.cancel import cancel
from hongyan.core.receive import Receiver
from hongyan.store import tables
from hongyan.store.db import make_engine


@click.group("submission")
def submission_group() -> None:
    """Submissions: a request's messages, as accepted."""


@submission_group.command("cancel")
@click.argument("submission_id", type=int)
@click.option("--account", "username", default=None,
              help="Only if the submission is this account's (a check against a mistyped id).")
def cancel_command(submission_id: int, username: str | None) -> None:
    """Cancel the messages of SUBMISSION_ID not yet sent: refunded in full, reported as CANCEL."""
    ctx = click.get_current_context().obj   # the `hongyan` group's Ctx
    engine = ctx.engine()
    # The directory reads accounts while the cancel's transaction is open: on
    # SQLite that must be a read-only engine, or it would wait for the write lock.
    reader = make_engine(ctx.settings.resolved_database_url(), read_only=True, pool_size=1) \
        if ctx.settings.is_sqlite else engine
    receiver = Receiver(acc.Directory(reader, ctx.cipher()))
    try:
        with engine.begin() as conn:
            owner = conn.execute(select(tables.submissions.c.account_id)
                                 .where(tables.submissions.c.id == submission_id)).scalar()
            if owner is None:
                raise click.ClickException(f"no submission {submission_id}")
            if username is not None and acc.account_id(conn, username) != owner:
                raise click.ClickException(f"submission {submission_id} is not {username}'s")
            outcome = cancel(conn, owner, submission_id, receiver)
    except acc.AdminError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
        reader.dispose()
    if not outcome.ok:
        raise click.ClickException(outcome.detail or outcome.message)
    d = outcome.data
    click.echo(f"submission {submission_id} cancelled: {d['cancelled']} message(s) stopped, "
               f"{d['refunded']} refunded, {d['not_cancelled']} already sent or finished")
