"""The ``hongyan`` command: set up, run, administer, send, simulate, measure."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click
import orjson
from sqlalchemy import insert, select, update

from hongyan import config as configmod
from hongyan.channels import PROTOCOLS
from hongyan.core import accounts as acc
from hongyan.core.secrets import Cipher, bearer_key, new_fernet_key, new_secret
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate

DEMO_ORG, DEMO_USER = "100001", "demo"


class Ctx:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings = None

    @property
    def settings(self) -> configmod.Settings:
        if self._settings is None:
            self._settings = configmod.load(self.config_path)
        return self._settings

    def engine(self):
        s = self.settings
        url = s.resolved_database_url()
        migrate(url)
        return make_engine(url, synchronous=s.sqlite_synchronous, pool_size=2)

    def cipher(self) -> Cipher:
        return Cipher(self.settings.secret_key)


pass_ctx = click.make_pass_decorator(Ctx)


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _admin(ctx: Ctx, fn, *args, **kwargs):
    engine = ctx.engine()
    try:
        with engine.begin() as conn:
            return fn(conn, *args, **kwargs)
    except (acc.AdminError, ValueError) as exc:
        _fail(str(exc))
    finally:
        engine.dispose()


@click.group()
@click.option("--config", "config_path", envvar="HONGYAN_CONFIG", default=None,
              help="Config file (default ./hongyan.toml).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="hongyan")
@click.pass_context
def main(click_ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Hongyan (鸿雁): an enterprise SMS platform."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose == 0:
        logging.getLogger("hongyan").setLevel(logging.INFO)
    click_ctx.obj = Ctx(config_path)


# -- setting up -----------------------------------------------------------------

@main.command()
@click.option("--database-url", default=None, help="SQLAlchemy URL; default SQLite in ./var/.")
@click.option("--http-port", type=int, default=None)
@click.option("--demo/--no-demo", default=False, help="Also create the demo org, account and simulator channel.")
@pass_ctx
def init(ctx: Ctx, database_url: str | None, http_port: int | None, demo: bool) -> None:
    """Write a config (if there is none), create the database, optionally the demo."""
    path = ctx.config_path or os.environ.get("HONGYAN_CONFIG") or configmod.DEFAULT_CONFIG
    if not Path(path).exists():
        values = {"database_url": database_url or "sqlite:///var/hongyan.db", "secret_key": new_fernet_key(),
                  "http_host": "127.0.0.1", "http_port": http_port or 8080, "simulator": demo}
        configmod.write_config(path, values)
        click.echo(f"wrote {path} (keep its secret_key: it decrypts every stored API secret)")
    ctx._settings = None
    ctx.config_path = path
    s = ctx.settings
    if database_url:
        s.database_url = database_url
    engine = ctx.engine()
    click.echo(f"database ready: {_safe_url(s.resolved_database_url())}")
    if demo:
        with engine.begin() as conn:
            key = seed_demo(conn, ctx.cipher(), s)
        if key:
            click.echo(f"demo account {DEMO_USER!r} (org {DEMO_ORG}) created with 10000 messages of balance")
            click.echo(f"  API key: {key}")
            click.echo("  console: customer demo / demo, operator admin / admin (change them for anything but a demo)")
    engine.dispose()


def seed_demo(conn, cipher: Cipher, s: configmod.Settings) -> str | None:
    """The demo org and account, and a channel to the built-in simulator. Idempotent."""
    if conn.execute(select(tables.accounts.c.id).where(tables.accounts.c.username == DEMO_USER)).first():
        return None
    if not conn.execute(select(tables.orgs.c.id).where(tables.orgs.c.code == DEMO_ORG)).first():
        acc.create_org(conn, DEMO_ORG, "Demo Co.")
    _, _, key = acc.create_account(conn, cipher, org_code=DEMO_ORG, username=DEMO_USER, extension="01",
                                   password="demo")
    acc.topup(conn, acc.owner_of(conn, DEMO_USER), 10_000, note="demo balance")
    from hongyan.console.auth import ensure_demo_operator

    ensure_demo_operator(conn)
    if not conn.execute(select(tables.channels.c.id).where(tables.channels.c.name == "simulator")).first():
        conn.execute(insert(tables.channels).values(
            name="simulator", protocol="cmpp2", host="127.0.0.1", port=s.simulator_port, username="901234",
            secret_enc=cipher.encrypt(new_secret()), access_code="1069000", service_id="HONGYAN",
            mps=2000, window=32, connections=2, enabled=True, is_default=True, options="{}"))
    return key


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.command("migrate")
@pass_ctx
def migrate_command(ctx: Ctx) -> None:
    """Bring the database schema up to date."""
    ctx.engine().dispose()
    click.echo("schema is up to date")


# -- running --------------------------------------------------------------------

@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--roles", default=None, help="Comma-separated: api, dispatch, notify (default all).")
@click.option("--simulator/--no-simulator", default=None, help="Run the built-in carrier simulator in-process.")
@click.option("--cmpp-port", type=int, default=None,
              help="Port of the CMPP server for customers (default 7890; 0 picks a free one).")
@click.option("--no-cmpp-server", is_flag=True, help="Do not run the CMPP server for customers.")
@click.option("--smpp-port", type=int, default=None,
              help="Port of the SMPP server for customers (default 2775; 0 picks a free one).")
@click.option("--no-smpp-server", is_flag=True, help="Do not run the SMPP server for customers.")
@pass_ctx
def serve(ctx: Ctx, host: str | None, port: int | None, roles: str | None, simulator: bool | None,
          cmpp_port: int | None, no_cmpp_server: bool, smpp_port: int | None, no_smpp_server: bool) -> None:
    """Run Hongyan: HTTP front doors and the services of the configured roles."""
    s = ctx.settings
    if cmpp_port is not None:
        s.cmpp_server_port = cmpp_port
    if no_cmpp_server:
        s.cmpp_server_port = None
    if smpp_port is not None:
        s.smpp_server_port = smpp_port
    if no_smpp_server:
        s.smpp_server_port = None
    if not s.secret_key:
        _fail("no secret_key configured: run `hongyan init` first (or set HONGYAN_SECRET_KEY)")
    if host:
        s.http_host = host
    if port:
        s.http_port = port
    if roles:
        s.roles = [r.strip() for r in roles.split(",") if r.strip()]
    if simulator is not None:
        s.simulator = simulator
    _serve(s)


def _serve(s: configmod.Settings) -> None:
    import uvicorn

    from hongyan import gc_policy
    from hongyan.app import create_app

    loop = "uvloop" if _has("uvloop") else "asyncio"
    click.echo(f"Hongyan listening on http://{s.http_host}:{s.http_port}  (API docs: /docs, health: /healthz)")
    cmpp = s.listen_port(s.cmpp_server_port)
    if cmpp is not None and s.has_role("api"):
        where = str(cmpp) if cmpp else "a free port (see servers.cmpp.port in /healthz)"
        click.echo(f"CMPP 2.0/3.0 server for customers on {s.server_host}:{where}  "
                   "(Source_Addr = account username, shared secret = API secret)")
    smpp = s.listen_port(s.smpp_server_port)
    if smpp is not None and s.has_role("api"):
        where = str(smpp) if smpp else "a free port (see servers.smpp.port in /healthz)"
        click.echo(f"SMPP 3.4 server for customers on {s.server_host}:{where}  "
                   "(system_id = account username, password = the API secret's first 8 characters)")
    app = create_app(s)
    gc_policy.settle()
    uvicorn.run(app, host=s.http_host, port=s.http_port, loop=loop,
                http="httptools" if _has("httptools") else "h11", access_log=False, log_level="warning",
                timeout_graceful_shutdown=15,
                # The client address is the socket's: a proxy in front must be trusted
                # explicitly before its X-Forwarded-For could decide an IP allow-list.
                proxy_headers=False, server_header=False)


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@main.command()
@click.option("--port", type=int, default=None, help="HTTP port (default 8080).")
@pass_ctx
def demo(ctx: Ctx, port: int | None) -> None:
    """Set up the demo (first run) and serve it with the built-in carrier simulator."""
    click_ctx = click.get_current_context()
    path = ctx.config_path or os.environ.get("HONGYAN_CONFIG") or configmod.DEFAULT_CONFIG
    first = not Path(path).exists()
    click_ctx.invoke(init, database_url=None, http_port=port, demo=True)
    s = ctx.settings
    s.simulator = True
    if port:
        s.http_port = port
    engine = ctx.engine()
    with engine.connect() as conn:
        row = conn.execute(select(tables.accounts).where(tables.accounts.c.username == DEMO_USER)).first()
    engine.dispose()
    key = bearer_key(row.key_id, ctx.cipher().decrypt(row.secret_enc))
    base = f"http://{s.http_host}:{s.http_port}"
    click.echo("")
    click.echo("Send a first message:" if first else "Send a message:")
    click.echo(f"  curl -s {base}/v1/messages -H 'Authorization: Bearer {key}' \\")
    click.echo("       -H 'Content-Type: application/json' \\")
    click.echo("       -d '{\"to\": \"13800138000\", \"content\": \"【鸿雁】您的验证码是 1234\"}'")
    click.echo("Then read its delivery report (the simulator reports after half a second):")
    click.echo(f"  curl -s {base}/v1/reports -H 'Authorization: Bearer {key}'")
    click.echo(f"Or have reports pushed to your server: hongyan account set {DEMO_USER} --report-url http://...")
    click.echo("  (try `hongyan sink --port 9000` as that server, with --report-url http://127.0.0.1:9000/)")
    click.echo("")
    _serve(s)


@main.command()
@click.option("--protocol", type=click.Choice(["cmpp2", "cmpp3", "smpp", "sgip", "smgp"]), default="cmpp2",
              show_default=True, help="Which carrier gateway to play (cmpp2 also takes 3.0 logins).")
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=7891, help="Port the simulated gateway listens on.")
@click.option("--control-port", type=int, default=7892, help="HTTP port for /stats and POST /mo.")
@click.option("--report-delay", type=float, default=0.5, help="Seconds from submit to its report.")
@click.option("--fail-rate", type=float, default=0.0, help="Share of messages reported as failed (0..1).")
@click.option("--account", "accounts", multiple=True, metavar="SPID:SECRET",
              help="Accept only these logins (repeatable); default: any.")
@click.option("--sp-host", default="127.0.0.1", show_default=True,
              help="SGIP: where the SP's listener is (the gateway connects there to deliver).")
@click.option("--sp-port", type=int, default=8802, show_default=True, help="SGIP: the SP listener's port.")
def simulate(protocol: str, host: str, port: int, control_port: int, report_delay: float, fail_rate: float,
             accounts: tuple[str, ...], sp_host: str, sp_port: int) -> None:
    """Run a carrier simulator alone (CMPP, SMPP, SGIP or SMGP gateway) with its control API."""
    from hongyan import gc_policy
    from hongyan.channels.simulator import run_simulator

    logins = {}
    for a in accounts:
        sp, sep, secret = a.partition(":")
        if not sep:
            _fail(f"--account {a!r}: expected SPID:SECRET")
        logins[sp] = secret
    extra = {"sp_host": sp_host, "sp_port": sp_port} if protocol == "sgip" else {}
    gc_policy.settle()
    _run(run_simulator(host, port, control_port, report_delay, fail_rate, logins or None, protocol, **extra))


def _run(coro) -> None:
    try:
        if _has("uvloop"):
            import uvloop
            uvloop.run(coro)
        else:
            asyncio.run(coro)
    except KeyboardInterrupt:
        pass


# -- administration -------------------------------------------------------------

@main.group()
def org() -> None:
    """Organisations (机构): the org id customers' requests name (entid / cid)."""


@org.command("create")
@click.argument("code")
@click.option("--name", default=None)
@pass_ctx
def org_create(ctx: Ctx, code: str, name: str | None) -> None:
    _admin(ctx, acc.create_org, code, name)
    click.echo(f"org {code} created")


@org.command("set")
@click.argument("code")
@click.option("--state", type=click.Choice(["active", "disabled"]), required=True)
@pass_ctx
def org_set(ctx: Ctx, code: str, state: str) -> None:
    _admin(ctx, acc.set_org_state, code, state)
    click.echo(f"org {code}: state {state}")


@main.group()
def account() -> None:
    """Accounts: who sends, with which key, paid from which balance."""


@account.command("create")
@click.argument("username")
@click.option("--org", "org_code", required=True, help="The org's code (create it with `hongyan org create`).")
@click.option("--pay-type", type=click.Choice(["account", "org"]), default="account",
              help="Whose balance pays: the account's own or its org's.")
@click.option("--extension", default="", help="Digits added to the channel's source number for this account.")
@click.option("--report-url", default=None, help="Where reports are pushed.")
@click.option("--mo-url", default=None, help="Where replies are pushed (default: the report URL).")
@click.option("--password", default=None, help="Console password.")
@click.option("--secret", default=None, help="Choose the API secret instead of generating one.")
@click.option("--ip-allowlist", default="", help="Comma-separated addresses or CIDRs; empty = any.")
@click.option("--balance", type=int, default=0, help="Top up this much right away.")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user")
@pass_ctx
def account_create(ctx: Ctx, username: str, org_code: str, pay_type: str, extension: str,
                   report_url: str | None, mo_url: str | None, password: str | None, secret: str | None,
                   ip_allowlist: str, balance: int, role: str) -> None:
    def do(conn):
        aid, sec, key = acc.create_account(conn, ctx.cipher(), org_code=org_code, username=username,
                                           secret=secret, password=password, pay_type=pay_type, role=role,
                                           extension=extension, report_url=report_url, mo_url=mo_url,
                                           ip_allowlist=ip_allowlist)
        if balance:
            acc.topup(conn, acc.owner_of(conn, username), balance, note="initial balance")
        return aid, sec, key
    aid, sec, key = _admin(ctx, do)
    click.echo(f"account {username} created (id {aid})")
    click.echo(f"  API secret (password for the vendor interfaces): {sec}")
    click.echo(f"  API key (Bearer, native API): {key}")


@account.command("topup")
@click.argument("username")
@click.argument("amount", type=int)
@click.option("--product", default=None, help="Top up this product's balance.")
@click.option("--org", "to_org", is_flag=True, help="Top up the account's org balance.")
@click.option("--note", default="")
@pass_ctx
def account_topup(ctx: Ctx, username: str, amount: int, product: str | None, to_org: bool, note: str) -> None:
    """Add AMOUNT (negative to take back) to the balance that pays for USERNAME."""
    new = _admin(ctx, lambda conn: acc.topup(conn, acc.owner_of(conn, username, use_org=to_org), amount,
                                             product, note or "top-up"))
    click.echo(f"balance now {new}")


@account.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def account_list(ctx: Ctx, as_json: bool) -> None:
    rows = _admin(ctx, acc.list_accounts)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{'id':>4}  {'username':<16} {'org':<10} {'state':<9} {'pays':<8} {'ext':<6} balances")
    for r in rows:
        bal = ", ".join(f"{b['product'] or 'general'}={b['amount']}" for b in r["balances"])
        click.echo(f"{r['id']:>4}  {r['username']:<16} {r['org']:<10} {r['state']:<9} {r['pay_type']:<8} "
                   f"{r['extension']:<6} {bal}")


@account.command("rotate-key")
@click.argument("username")
@pass_ctx
def account_rotate(ctx: Ctx, username: str) -> None:
    """Issue a new API secret and key; the old ones stop working at once."""
    sec, key = _admin(ctx, acc.rotate_key, ctx.cipher(), username)
    click.echo(f"  API secret: {sec}")
    click.echo(f"  API key: {key}")


@account.command("set")
@click.argument("username")
@click.option("--state", type=click.Choice(list(acc.ACCOUNT_STATES)), default=None)
@click.option("--report-url", default=None, help="'' to clear.")
@click.option("--mo-url", default=None, help="'' to clear.")
@click.option("--pay-type", type=click.Choice(["account", "org"]), default=None)
@click.option("--extension", default=None)
@click.option("--ip-allowlist", default=None)
@click.option("--push-dialect", default=None,
              help="The format the account's servers take pushes in: native, or a vendor dialect's name.")
@click.option("--mo-push-dialect", default=None,
              help="The format replies are pushed to the MO URL in, when not the --push-dialect ('' clears).")
@click.option("--refund-policy", type=click.Choice(["failed", "never"]), default=None,
              help="Refund messages that fail (default) or never.")
@click.option("--role", type=click.Choice(["user", "admin"]), default=None)
@click.option("--expires-at", default=None, help="ISO date-time after which the account expires; '' clears.")
@pass_ctx
def account_set(ctx: Ctx, username: str, **opts) -> None:
    from datetime import datetime

    from hongyan.domain.clock import to_ms

    values = {k: v for k, v in opts.items() if v is not None}
    from hongyan.dialects import push_formats
    from hongyan.core.notify import SESSION_DIALECTS
    known = ["native", *push_formats(), *sorted(SESSION_DIALECTS)]
    for opt in ("push_dialect", "mo_push_dialect"):
        if values.get(opt) and values[opt] not in known:
            _fail(f"--{opt.replace('_', '-')} must be one of: {', '.join(known)}")
    if values.get("mo_push_dialect") == "":
        values["mo_push_dialect"] = None
    for k in ("report_url", "mo_url"):
        if values.get(k) == "":
            values[k] = None
    if "expires_at" in values:
        values["expires_at"] = to_ms(datetime.fromisoformat(values["expires_at"])) if values["expires_at"] else None
    if not values:
        _fail("nothing to change")
    _admin(ctx, acc.update_account, username, **values)
    click.echo(f"account {username} updated: {', '.join(sorted(values))}")


@account.command("show")
@click.argument("username")
@click.option("--secret", "show_secret", is_flag=True, help="Also print the API secret and key.")
@pass_ctx
def account_show(ctx: Ctx, username: str, show_secret: bool) -> None:
    def load(conn):
        row = conn.execute(select(tables.accounts).where(tables.accounts.c.username == username)).first()
        if row is None:
            raise acc.AdminError(f"no account {username!r}")
        return row, acc.balances_of(conn, acc.owner_of(conn, username))
    row, bals = _admin(ctx, load)
    for k in ("id", "username", "state", "pay_type", "role", "extension", "report_url", "mo_url",
              "push_dialect", "mo_push_dialect",
              "ip_allowlist", "refund_policy"):
        click.echo(f"{k:>14}: {getattr(row, k)}")
    for b in bals:
        click.echo(f"{'balance':>14}: {b['product'] or 'general'} = {b['amount']}")
    if show_secret:
        secret = ctx.cipher().decrypt(row.secret_enc)
        click.echo(f"{'secret':>14}: {secret}")
        click.echo(f"{'key':>14}: {bearer_key(row.key_id, secret)}")


@main.command("ledger-check")
@pass_ctx
def ledger_check(ctx: Ctx) -> None:
    """Check that every balance equals the sum of its ledger."""
    bad = _admin(ctx, acc.ledger_mismatches)
    if bad:
        for bid, amount, total in bad:
            click.echo(f"balance {bid}: {amount} but its ledger sums to {total}")
        sys.exit(1)
    click.echo("every balance equals its ledger")


@main.group()
def product() -> None:
    """Products: priced offerings an account subscribes to, each with its own balance."""


@product.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--price", type=int, default=1, help="Units charged per message part.")
@click.option("--channel", default=None, help="Send this product's messages on this channel.")
@pass_ctx
def product_create(ctx: Ctx, code: str, name: str, price: int, channel: str | None) -> None:
    def do(conn):
        cid = None
        if channel:
            cid = conn.execute(select(tables.channels.c.id).where(tables.channels.c.name == channel)).scalar()
            if cid is None:
                raise acc.AdminError(f"no channel {channel!r}")
        return acc.create_product(conn, code, name, price, cid)
    _admin(ctx, do)
    click.echo(f"product {code} created")


@product.command("subscribe")
@click.argument("username")
@click.argument("code")
@pass_ctx
def product_subscribe(ctx: Ctx, username: str, code: str) -> None:
    _admin(ctx, acc.subscribe, username, code)
    click.echo(f"{username} subscribed to {code}")


@main.group()
def channel() -> None:
    """Carrier channels."""


@channel.command("add")
@click.argument("name")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="cmpp2",
              help="A carrier protocol (cmpp2, cmpp3, smpp, sgip, smgp), or http-<dialect> for another "
                   "platform reached through that vendor API.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=7890)
@click.option("--username", required=True, help="Login (CMPP: the SP id, Source_Addr).")
@click.option("--password", required=True, help="Shared secret.")
@click.option("--access-code", default="", help="Source number prefix (SP access code).")
@click.option("--service-id", default="")
@click.option("--mps", type=int, default=100, help="Messages per second, all connections together.")
@click.option("--window", type=int, default=16, help="Unanswered submits per connection.")
@click.option("--connections", type=int, default=1)
@click.option("--default", "is_default", is_flag=True, help="Route messages here unless a product says otherwise.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A channel option (repeatable), e.g. product=… for an HTTP upstream.")
@click.option("--url", default=None, help="HTTP upstreams: the upstream's base URL (the option url).")
@pass_ctx
def channel_add(ctx: Ctx, name: str, protocol: str, password: str, is_default: bool,
                options: tuple[str, ...], url: str | None, **fields) -> None:
    values = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        values[key.strip()] = value
    if url is not None:
        values["url"] = url
    if protocol.startswith("http-") and not values.get("url"):
        raise click.UsageError(f"protocol {protocol} needs --url (the upstream's base URL)")

    def do(conn):
        if is_default:
            conn.execute(update(tables.channels).values(is_default=False))
        conn.execute(insert(tables.channels).values(name=name, protocol=protocol,
                                                    secret_enc=ctx.cipher().encrypt(password),
                                                    enabled=True, is_default=is_default,
                                                    options=orjson.dumps(values).decode(), **fields))
    _admin(ctx, do)
    click.echo(f"channel {name} added (takes effect when the server restarts)")


@channel.command("set")
@click.argument("name")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--username", default=None)
@click.option("--password", default=None)
@click.option("--access-code", default=None)
@click.option("--service-id", default=None)
@click.option("--mps", type=int, default=None)
@click.option("--window", type=int, default=None)
@click.option("--connections", type=int, default=None)
@click.option("--enabled/--disabled", default=None)
@click.option("--default", "is_default", is_flag=True, default=None)
@pass_ctx
def channel_set(ctx: Ctx, name: str, password: str | None, is_default: bool | None, **fields) -> None:
    values = {k: v for k, v in fields.items() if v is not None}
    if password is not None:
        values["secret_enc"] = ctx.cipher().encrypt(password)

    def do(conn):
        if is_default:
            conn.execute(update(tables.channels).values(is_default=False))
            values["is_default"] = True
        if not values:
            raise acc.AdminError("nothing to change")
        n = conn.execute(update(tables.channels).where(tables.channels.c.name == name).values(**values)).rowcount
        if not n:
            raise acc.AdminError(f"no channel {name!r}")
    _admin(ctx, do)
    click.echo(f"channel {name} updated (takes effect when the server restarts)")


@channel.command("list")
@pass_ctx
def channel_list(ctx: Ctx) -> None:
    rows = _admin(ctx, lambda conn: conn.execute(select(tables.channels).order_by(tables.channels.c.id)).all())
    for r in rows:
        flags = ("default " if r.is_default else "") + ("" if r.enabled else "disabled")
        click.echo(f"{r.id:>3}  {r.name:<16} {r.protocol:<6} {r.host}:{r.port}  login {r.username}  "
                   f"access {r.access_code or '-'}  {r.mps}/s window {r.window} ×{r.connections}  {flags}")


# -- sending --------------------------------------------------------------------

@main.command()
@click.option("--account", "username", default=DEMO_USER, show_default=True)
@click.option("--to", required=True, help="Number(s), comma-separated.")
@click.option("--content", required=True)
@click.option("--extno", default="")
@click.option("--url", default=None, help="Server base URL (default: the configured HTTP address).")
@click.option("--wait/--no-wait", default=True, help="Wait for the delivery reports and show them.")
@click.option("--timeout", type=float, default=30.0)
@pass_ctx
def send(ctx: Ctx, username: str, to: str, content: str, extno: str, url: str | None, wait: bool,
         timeout: float) -> None:
    """Send a message through a running server's native API, and follow it to its report."""
    import time

    import httpx

    s = ctx.settings
    row = _admin(ctx, lambda conn: conn.execute(select(tables.accounts).where(
        tables.accounts.c.username == username)).first())
    if row is None:
        _fail(f"no account {username!r}")
    key = bearer_key(row.key_id, ctx.cipher().decrypt(row.secret_enc))
    base = url or f"http://{s.http_host}:{s.http_port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        r = httpx.post(f"{base}/v1/messages", json={"to": to, "content": content, "extno": extno},
                       headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {base}: {exc} (is `hongyan serve` running?)")
    body = r.json()
    if r.status_code != 200:
        _fail(f"refused ({r.status_code}): {body.get('code')}: {body.get('message')}")
    ids = {m["id"] for m in body["messages"]}
    click.echo(f"accepted: submission {body['submission_id']}, {len(ids)} message(s), "
               f"{body['parts']} part(s) each, cost {body['cost']}, balance {body['balance']}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    pending = set(ids)
    with click.progressbar(length=len(ids), label="waiting for reports") as bar:
        while pending and time.monotonic() < deadline:
            time.sleep(0.3)
            sub = httpx.get(f"{base}/v1/submissions/{body['submission_id']}", headers=headers, timeout=30).json()
            done = {m["id"] for m in sub["messages"] if m["state"] in ("delivered", "failed", "expired")}
            bar.update(len(pending & done))
            pending -= done
    sub = httpx.get(f"{base}/v1/submissions/{body['submission_id']}", headers=headers, timeout=30).json()
    for m in sub["messages"]:
        click.echo(f"  {m['to']}: {m['state']} {m['carrier_status'] or ''}")
    if pending:
        _fail(f"{len(pending)} message(s) had no final report within {timeout:.0f} s")


def _register_optional() -> None:
    from hongyan.bench import bench_command
    from hongyan.sink import sink_command
    from hongyan.console.cli import operator_group
    from hongyan.cli_submissions import submission_group

    main.add_command(bench_command, "bench")
    main.add_command(submission_group, "submission")
    main.add_command(sink_command, "sink")
    main.add_command(operator_group, "operator")
    from hongyan.cli_routes import register as register_routes
    register_routes(main)
    from hongyan.cli_rules import register as register_rules
    register_rules(main)


if __name__ == "__main__":
    # Run as `python -m hongyan.cli`: the command modules import hongyan.cli,
    # which must be this module, not a second copy loaded under that name.
    sys.modules.setdefault("hongyan.cli", sys.modules[__name__])
_register_optional()

if __name__ == "__main__":
    main()
