"""``hongyan rules|words|blacklist|review``: the content rules an operator sets, and the review queue.

A running server sees changes made here within a few seconds (its rule,
word and blacklist caches poll the tables); approved messages are picked up
by the dispatcher's next poll.
"""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click
import orjson
from sqlalchemy import select

from hongyan.cli import Ctx, _admin, _fail, pass_ctx
from hongyan.core import accounts as acc
from hongyan.core import blacklist as bl
from hongyan.core import review as rv
from hongyan.core import rules as rulesmod
from hongyan.core.rules import RuleSettings
from hongyan.core.rules_admin import check_words, normalise_phones, rule_sources, stored_problems, unset_rules
from hongyan.domain.clock import iso
from hongyan.domain.words import fold, read_words
from hongyan.store import tables

LISTS = ("block", "review")
BATCH = 5000   # rows per insert when importing


def _account_or_platform(fn):
    """--account U / --platform (``_target`` checks how many were given)."""
    fn = click.option("--platform", is_flag=True, help="The platform-wide setting or list.")(fn)
    return click.option("--account", "username", default=None, metavar="USERNAME",
                        help="One account's setting or list.")(fn)


def _target(username: str | None, platform: bool, *, required: bool = True) -> None:
    if username and platform:
        raise click.UsageError("give --account or --platform, not both")
    if required and not username and not platform:
        raise click.UsageError("say whose: --account USERNAME or --platform")


def _account_id(conn, username: str | None) -> int:
    return acc.account_id(conn, username) if username else 0


def _whose(username: str | None) -> str:
    return f"account {username}" if username else "the platform"


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- rules ------------------------------------------------------------------------

@click.group()
def rules() -> None:
    """Rule settings: defaults, overridden by the platform's, overridden by an account's."""


@rules.command("show")
@click.option("--account", "username", default=None, metavar="USERNAME",
              help="Show this account's effective rules (default: the platform's).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def rules_show(ctx: Ctx, username: str | None, as_json: bool) -> None:
    """Every rule key, its effective value and where it comes from (default, platform, account)."""
    def read(conn):
        account_id = _account_id(conn, username)
        return rule_sources(conn, account_id), stored_problems(conn, account_id)

    rows, problems = _admin(ctx, read)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(orjson.dumps({k: {"value": v, "source": s} for k, v, s in rows},
                                option=orjson.OPT_INDENT_2).decode())
        return
    width = max(len(k) for k, _, _ in rows)
    click.echo(f"{'key':<{width}}  {'from':<8}  value")
    for k, v, s in rows:
        click.echo(f"{k:<{width}}  {s:<8}  {_dump(v)}")


def parse_value(key: str, raw: str) -> Any:
    """A value typed on the command line, as its key's type expects it.

    JSON where it parses (``true``, ``50``, ``["a","b"]``); a text key keeps
    the words as typed (so ``default_signature=123`` is the text "123"); a list
    key takes a JSON array or, failing that, the text (which the key splits).
    """
    default = getattr(RuleSettings(), key, None) if key in RuleSettings.keys() else None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(default, str):
        return value if isinstance(value, str) else raw
    if isinstance(default, tuple) and not isinstance(value, list):
        return raw
    return value


def _pairs(items: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        values[key.strip()] = parse_value(key.strip(), raw)
    return values


@rules.command("set")
@_account_or_platform
@click.argument("items", nargs=-1, required=True, metavar="KEY=VALUE...")
@pass_ctx
def rules_set(ctx: Ctx, username: str | None, platform: bool, items: tuple[str, ...]) -> None:
    """Set rule keys for an account or the platform, e.g. ``mps=50 signatures='["鸿雁"]'``."""
    _target(username, platform)
    values = _pairs(items)
    _admin(ctx, lambda conn: rulesmod.set_rules(conn, _account_id(conn, username), **values))
    click.echo(f"{_whose(username)}: set {', '.join(values)} (a running server applies it within seconds)")


@rules.command("unset")
@_account_or_platform
@click.argument("keys", nargs=-1, required=True)
@pass_ctx
def rules_unset(ctx: Ctx, username: str | None, platform: bool, keys: tuple[str, ...]) -> None:
    """Remove keys from an account's or the platform's settings: the next level's value applies."""
    _target(username, platform)
    removed = _admin(ctx, lambda conn: unset_rules(conn, _account_id(conn, username), list(keys)))
    left = [k for k in keys if k not in removed]
    if removed:
        click.echo(f"{_whose(username)}: unset {', '.join(removed)}")
    if left:
        click.echo(f"{_whose(username)}: {', '.join(left)} was not set")


# -- words ------------------------------------------------------------------------

@click.group()
def words() -> None:
    """Sensitive words: block refuses a message, review holds it for an operator."""


_list_option = click.option("--list", "kind", type=click.Choice(LISTS), required=True,
                            help="block: refuse the message; review: hold it for review.")


def _checked_words(items: list[str]) -> list[str]:
    out = check_words(items)
    blind = [w for w in out if not fold(w)]
    if blind:
        click.echo(f"ignored (no letter or digit, it could never match): {', '.join(blind[:10])}", err=True)
    return [w for w in out if fold(w)]


def _add_in_batches(ctx: Ctx, kind: str, items: list[str]) -> int:
    def do(conn):
        return sum(rulesmod.add_words(conn, kind, items[i:i + BATCH]) for i in range(0, len(items), BATCH))
    return _admin(ctx, do)


@words.command("add")
@_list_option
@click.argument("items", nargs=-1, required=True, metavar="WORD...")
@pass_ctx
def words_add(ctx: Ctx, kind: str, items: tuple[str, ...]) -> None:
    try:
        checked = _checked_words(list(items))
    except acc.AdminError as exc:
        _fail(str(exc))
    added = _add_in_batches(ctx, kind, checked)
    click.echo(f"{kind}: {added} added, {len(set(checked)) - added} already listed")


@words.command("remove")
@_list_option
@click.argument("items", nargs=-1, required=True, metavar="WORD...")
@pass_ctx
def words_remove(ctx: Ctx, kind: str, items: tuple[str, ...]) -> None:
    removed = _admin(ctx, rulesmod.remove_words, kind, [w.strip() for w in items if w.strip()])
    click.echo(f"{kind}: {removed} removed")


@words.command("list")
@click.option("--list", "kind", type=click.Choice(LISTS), default=None, help="Only this list.")
@pass_ctx
def words_list(ctx: Ctx, kind: str | None) -> None:
    """The listed words, one a line (with --list: exactly the file ``words import`` reads)."""
    w = tables.words
    q = select(w.c.list, w.c.word).order_by(w.c.list, w.c.id)
    if kind:
        q = q.where(w.c.list == kind)
    rows = _admin(ctx, lambda conn: conn.execute(q).all())
    for k, word in rows:
        click.echo(word if kind else f"{k}\t{word}")


@words.command("import")
@_list_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def words_import(ctx: Ctx, kind: str, path: Path) -> None:
    """Add the words of a UTF-8 file, one a line (blank lines and lines starting with # are skipped)."""
    try:
        items = _checked_words(read_words(path))
    except UnicodeDecodeError as exc:
        _fail(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); nothing was imported")
    except acc.AdminError as exc:
        _fail(f"{path}: {exc}; nothing was imported")
    added = _add_in_batches(ctx, kind, items)
    click.echo(f"{kind}: {added} added, {len(set(items)) - added} already listed (from {len(items)} lines)")


# -- blacklist --------------------------------------------------------------------

@click.group()
def blacklist() -> None:
    """Numbers never sent to: one account's, or platform-wide."""


def _normalised(raw: list[str]) -> list[str]:
    try:
        phones = normalise_phones(raw)
    except acc.AdminError as exc:
        _fail(f"{exc}; nothing was changed")
    if not phones:
        _fail("no number given")
    return phones


@blacklist.command("add")
@_account_or_platform
@click.option("--note", default="", help="Why (kept with the entry).")
@click.argument("phones", nargs=-1, required=True)
@pass_ctx
def blacklist_add(ctx: Ctx, username: str | None, platform: bool, note: str, phones: tuple[str, ...]) -> None:
    _target(username, platform)
    numbers = _normalised(list(phones))
    added = _admin(ctx, lambda conn: bl.add(conn, _account_id(conn, username), numbers, "manual", note))
    click.echo(f"{_whose(username)}: {added} added, {len(numbers) - added} already listed")


@blacklist.command("remove")
@_account_or_platform
@click.argument("phones", nargs=-1, required=True)
@pass_ctx
def blacklist_remove(ctx: Ctx, username: str | None, platform: bool, phones: tuple[str, ...]) -> None:
    _target(username, platform)
    numbers = _normalised(list(phones))
    removed = _admin(ctx, lambda conn: bl.remove(conn, _account_id(conn, username), numbers))
    click.echo(f"{_whose(username)}: {removed} removed")


@blacklist.command("list")
@_account_or_platform
@pass_ctx
def blacklist_list(ctx: Ctx, username: str | None, platform: bool) -> None:
    """Entries of one account, of the platform, or (neither given) every list."""
    _target(username, platform, required=False)

    def load(conn):
        aid = _account_id(conn, username) if (username or platform) else None
        names = dict(conn.execute(select(tables.accounts.c.id, tables.accounts.c.username)).all())
        return bl.list_(conn, aid), names
    rows, names = _admin(ctx, load)
    for r in rows:
        whose = names.get(r["account_id"], f"#{r['account_id']}") if r["account_id"] else "(platform)"
        click.echo(f"{r['phone']}  {whose:<16} {r['reason']:<7} {iso(r['created_at'])}  {r['note']}")
    if not rows:
        click.echo("no numbers listed", err=True)


def _file_numbers(path: Path, skip_invalid: bool) -> list[str]:
    """Numbers of a file, one a line (the first comma or tab separated field); # lines are skipped."""
    from hongyan.domain import numbers

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        _fail(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); nothing was imported")
    found, bad = [], []
    for no, line in enumerate(lines, 1):
        field = line.replace("\t", ",").split(",", 1)[0].strip()
        if not field or field.startswith("#") or (no == 1 and field.lower() == "phone"):
            continue
        phone = numbers.normalise(field)
        if phone is None:
            bad.append(f"line {no}: {field}")
        else:
            found.append(phone)
    if bad and not skip_invalid:
        shown = "; ".join(bad[:10]) + (f"; … {len(bad) - 10} more" if len(bad) > 10 else "")
        _fail(f"{len(bad)} invalid number(s), nothing was imported (--skip-invalid imports the rest): {shown}")
    if bad:
        click.echo(f"skipped {len(bad)} invalid number(s)", err=True)
    return list(dict.fromkeys(found))


@blacklist.command("import")
@_account_or_platform
@click.option("--note", default="", help="Kept with every entry.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid numbers and skip the rest.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def blacklist_import(ctx: Ctx, username: str | None, platform: bool, note: str, skip_invalid: bool,
                     path: Path) -> None:
    """Add the numbers of a file, one a line (a CSV's first column; a "phone" header is skipped)."""
    _target(username, platform)
    phones = _file_numbers(path, skip_invalid)

    def do(conn):
        aid = _account_id(conn, username)
        return sum(bl.add(conn, aid, phones[i:i + BATCH], "import", note) for i in range(0, len(phones), BATCH))
    added = _admin(ctx, do)
    click.echo(f"{_whose(username)}: {added} added, {len(phones) - added} already listed")


@blacklist.command("export")
@_account_or_platform
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: standard output).")
@pass_ctx
def blacklist_export(ctx: Ctx, username: str | None, platform: bool, output: Path | None) -> None:
    """The numbers of one list, one a line: the file ``blacklist import`` reads."""
    _target(username, platform)
    rows = _admin(ctx, lambda conn: bl.list_(conn, _account_id(conn, username)))
    text = "".join(f"{r['phone']}\n" for r in rows)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(rows)} number(s) to {output}", err=True)


# -- review -----------------------------------------------------------------------

@click.group()
def review() -> None:
    """Submissions held by a review word: approve to send them, reject to refund and report them."""


def _operator(name: str | None) -> str:
    return name or f"cli:{getpass.getuser()}"


_operator_option = click.option("--operator", default=None,
                                help="Who decides, for the record (default cli:<login name>).")


@review.command("list")
@click.option("--account", "username", default=None, metavar="USERNAME")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def review_list(ctx: Ctx, username: str | None, limit: int, as_json: bool) -> None:
    """Held submissions, oldest first, with the review words their text contains."""
    items = _admin(ctx, lambda conn: rv.held(conn, acc.account_id(conn, username) if username else None,
                                             limit=limit))
    if as_json:
        click.echo(orjson.dumps([{**i, "scheduled_at": iso(i["scheduled_at"]), "created_at": iso(i["created_at"])}
                                 for i in items], option=orjson.OPT_INDENT_2).decode())
        return
    if not items:
        click.echo("nothing is held for review", err=True)
        return
    for i in items:
        when = f"  scheduled {iso(i['scheduled_at'])}" if i["scheduled_at"] else ""
        click.echo(f"{i['submission_id']}  {i['username'] or i['account_id']}  {iso(i['created_at'])}  "
                   f"{i['held']}/{i['recipients']} held  words: {', '.join(i['words']) or '-'}{when}")
        click.echo(f"    {i['content']}")


@review.command("approve")
@click.argument("ids", nargs=-1, type=int, required=True)
@_operator_option
@pass_ctx
def review_approve(ctx: Ctx, ids: tuple[int, ...], operator: str | None) -> None:
    """Send held submissions (all named, or none if one cannot be approved)."""
    done = _admin(ctx, rv.approve, list(ids), _operator(operator))
    for d in done:
        at = f" at {iso(d.due_at)}" if d.scheduled else ""
        click.echo(f"submission {d.submission_id}: approved, {d.messages} message(s) queued{at}")


@review.command("reject")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--reason", default="", help="Why: kept in the record and in the messages' note.")
@_operator_option
@pass_ctx
def review_reject(ctx: Ctx, ids: tuple[int, ...], reason: str, operator: str | None) -> None:
    """Fail held submissions with REJECT: refunded and reported (all named, or none)."""
    from hongyan.core.accounts import Directory
    from hongyan.core.receive import Receiver
    from hongyan.store.db import make_engine

    s = ctx.settings
    # The receiver looks accounts up on its own connection while the decision's
    # transaction holds SQLite's write lock: it must not wait for that lock.
    reader = make_engine(s.resolved_database_url(), read_only=True, pool_size=1) if s.is_sqlite else None

    def do(conn):
        return rv.reject(conn, list(ids), _operator(operator), reason,
                         Receiver(Directory(reader or conn.engine, ctx.cipher())))
    try:
        done = _admin(ctx, do)
    finally:
        if reader is not None:
            reader.dispose()
    for d in done:
        click.echo(f"submission {d.submission_id}: rejected, {d.messages} message(s) failed with REJECT, "
                   f"{d.refunded} refunded")


def register(main: click.Group) -> None:
    for group in (rules, words, blacklist, review):
        main.add_command(group)
