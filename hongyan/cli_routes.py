"""``hongyan route ...``: which channels carry which messages; ``hongyan channel option``.

Route changes apply to running servers within about a second (the dispatcher
reloads the routes table when it changes); channel options apply when the
server restarts, like every other channel setting.
"""
from __future__ import annotations

import click
import orjson
from sqlalchemy import select, update

from hongyan.channels.base import ChannelConfig
from hongyan.core import accounts as acc
from hongyan.core import routing
from hongyan.store import tables


def _admin(fn, *args):
    """Run ``fn(conn, *args)`` in one transaction on the configured database; errors end the command."""
    # The `hongyan` group's Ctx, found through click rather than imported, so
    # this works under `python -m hongyan.cli` too.
    engine = click.get_current_context().obj.engine()
    try:
        with engine.begin() as conn:
            return fn(conn, *args)
    except (acc.AdminError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def register(main: click.Group) -> None:
    main.add_command(route)
    main.commands["channel"].add_command(channel_option, "option")


@click.group()
def route() -> None:
    """Routes: by carrier, product and account, with weights and priorities."""


@route.command("add")
@click.option("--channel", "channel_name", required=True, help="The channel's name (or id).")
@click.option("--carrier", default=None,
              help="Numbers of this carrier only: 移动|联通|电信|广电 or cmcc|unicom|telecom|cbn (default any).")
@click.option("--product", default=None, help="Messages of this product only (its code; default any).")
@click.option("--account", default=None, help="Messages of this account only (its username; default any).")
@click.option("--weight", type=click.IntRange(min=1), default=1, show_default=True,
              help="Share among the routes of the same match and priority.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Lower is tried first among routes that match as specifically.")
@click.option("--disabled", is_flag=True, help="Add it switched off.")
def route_add(channel_name: str, carrier: str | None, product: str | None, account: str | None,
              weight: int, priority: int, disabled: bool) -> None:
    """Send matching messages on a channel (running servers pick it up within a second)."""
    rid = _admin(lambda conn: routing.add_route(conn, channel=channel_name, carrier=carrier, product=product,
                                                     account=account, weight=weight, priority=priority,
                                                     enabled=not disabled))
    click.echo(f"route {rid} added")


@route.command("list")
@click.option("--json", "as_json", is_flag=True)
def route_list(as_json: bool) -> None:
    """Routes in the order a message tries them (most specific first, then by priority)."""
    rows = _admin(routing.list_routes)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("no routes: messages go to their product's channel, else the default channel")
        return
    click.echo(f"{'id':>4}  {'account':<12} {'product':<10} {'carrier':<8} {'channel':<16} "
               f"{'weight':>6} {'priority':>8}")
    for r in rows:
        click.echo(f"{r['id']:>4}  {r['account'] or '*':<12} {r['product'] or '*':<10} {r['carrier'] or '*':<8} "
                   f"{r['channel']:<16} {r['weight']:>6} {r['priority']:>8}"
                   + ("" if r["enabled"] else "  disabled"))


@route.command("remove")
@click.argument("route_id", type=int)
def route_remove(route_id: int) -> None:
    """Delete a route."""
    _admin(routing.remove_route, route_id)
    click.echo(f"route {route_id} removed")


@route.command("set")
@click.argument("route_id", type=int)
@click.option("--enabled/--disabled", required=True)
def route_set(route_id: int, enabled: bool) -> None:
    """Switch a route on or off."""
    _admin(routing.set_route_enabled, route_id, enabled)
    click.echo(f"route {route_id} {'enabled' if enabled else 'disabled'}")


@click.command("option")
@click.argument("name")
@click.argument("settings", nargs=-1, required=True, metavar="KEY=VALUE...")
def channel_option(name: str, settings: tuple[str, ...]) -> None:
    """Set channel options (KEY= removes one), e.g. supports_long=false source_max_len=20."""
    changes: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        changes[key.strip()] = value.strip()

    def do(conn):
        row = conn.execute(select(tables.channels.c.id, tables.channels.c.options)
                           .where(tables.channels.c.name == name)).first()
        if row is None:
            raise acc.AdminError(f"no channel {name!r}")
        options = orjson.loads(row.options or "{}")
        for key, value in changes.items():
            if value == "":
                options.pop(key, None)
            else:
                options[key] = value
        # The options every channel shares are checked now, not at the next start.
        probe = ChannelConfig(id=row.id, name=name, protocol="", options=options)
        _ = (probe.seqno_split, probe.source_max_len)
        conn.execute(update(tables.channels).where(tables.channels.c.id == row.id)
                     .values(options=orjson.dumps(options).decode()))
        return options
    options = _admin(do)
    click.echo(f"channel {name} options: {orjson.dumps(options).decode()} (takes effect when the server restarts)")
