"""``hongyan rules|words|blacklist|review`` through the real commands."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from hongyan.cli import main
from hongyan.config import write_config
from hongyan.core import accounts as acc
from hongyan.core import review
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.rules import get_rules
from hongyan.core.secrets import Cipher
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from hongyan.store.writer import Writer
from tests.helpers import seed


class Cli:
    def __init__(self, settings, tmp_path) -> None:
        self.config = tmp_path / "hongyan.toml"
        write_config(str(self.config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
        url = settings.resolved_database_url()
        migrate(url)
        self.engine = make_engine(url)
        self.cipher = Cipher(settings.secret_key)
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        done = self.runner.invoke(main, ["--config", str(self.config), *args])
        if ok:
            assert done.exit_code == 0, done.output
        else:
            assert done.exit_code != 0, done.output
        return done


@pytest.fixture
def cli(settings, tmp_path):
    c = Cli(settings, tmp_path)
    seed(c.engine, c.cipher, balance=100)
    yield c
    c.engine.dispose()


def test_rules_show_set_unset_and_where_values_come_from(cli):
    cli("rules", "set", "--platform", "mps=50", 'signatures=["鸿雁", "【测试】"]')
    cli("rules", "set", "--account", "alice", "mps=10", "signature_required=true", "default_signature=123")
    shown = orjson.loads(cli("rules", "show", "--account", "alice", "--json").output)
    assert shown["mps"] == {"value": 10, "source": "account"}
    assert shown["signatures"] == {"value": ["鸿雁", "测试"], "source": "platform"}
    assert shown["concurrency"]["source"] == "default"
    # A text key keeps what was typed, even when it looks like a number.
    assert shown["default_signature"] == {"value": "123", "source": "account"}
    table = cli("rules", "show", "--account", "alice").output
    assert any(line.split()[:3] == ["mps", "account", "10"] for line in table.splitlines())
    out = cli("rules", "unset", "--account", "alice", "mps", "concurrency").output
    assert "unset mps" in out and "concurrency was not set" in out
    with cli.engine.connect() as conn:
        rules = get_rules(conn, acc.account_id(conn, "alice"))
    assert rules.mps == 50 and rules.signature_required and rules.default_signature == "123"
    platform = orjson.loads(cli("rules", "show", "--json").output)
    assert platform["mps"] == {"value": 50, "source": "platform"}
    # Every key of RuleSettings is shown, so a new key needs no change here.
    assert set(platform) == set(type(rules).keys())


def test_rules_errors_are_clear_and_change_nothing(cli):
    bad = cli("rules", "set", "--account", "alice", "mps=5", "concurrency=lots", ok=False)
    assert "concurrency must be a whole number" in bad.output
    assert "unknown rule setting colour" in cli("rules", "set", "--platform", "colour=red", ok=False).output
    assert "no account 'nobody'" in cli("rules", "set", "--account", "nobody", "mps=1", ok=False).output
    assert "--account USERNAME or --platform" in cli("rules", "set", "mps=1", ok=False).output
    assert "not both" in cli("rules", "set", "--platform", "--account", "alice", "mps=1", ok=False).output
    assert "KEY=VALUE" in cli("rules", "set", "--platform", "mps", ok=False).output
    assert "unknown rule setting colour" in cli("rules", "unset", "--platform", "colour", ok=False).output
    with cli.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.account_rules)).scalar() == 0


def test_unset_repairs_a_row_with_a_key_no_longer_known(cli):
    with cli.engine.begin() as conn:
        conn.execute(tables.account_rules.insert().values(account_id=0, settings='{"old_key": 1, "mps": 3}',
                                                          updated_at=0))
    # Accept ignores it (and goes on); show says so.
    shown = cli("rules", "show").output
    assert "unknown rule setting old_key is ignored" in shown and "mps" in shown
    cli("rules", "unset", "--platform", "old_key")
    assert orjson.loads(cli("rules", "show", "--json").output)["mps"] == {"value": 3, "source": "platform"}


def test_words_add_list_remove_and_a_large_import(cli, tmp_path):
    out = cli("words", "add", "--list", "block", "法轮", "赌博", "法轮").output
    assert "2 added" in out
    cli("words", "add", "--list", "review", "贷款")
    assert "1 added, 1 already listed" in cli("words", "add", "--list", "review", "贷款 ", "还款").output
    assert cli("words", "list", "--list", "block").output.splitlines() == ["法轮", "赌博"]
    assert "review\t贷款\nreview\t还款" in cli("words", "list").output
    assert "1 removed" in cli("words", "remove", "--list", "block", "赌博").output
    assert "'grey' is not one of 'block', 'review'" in cli("words", "add", "--list", "grey", "x", ok=False).output
    assert "at most 64 characters" in cli("words", "add", "--list", "block", "长" * 65, ok=False).output

    words = [f"词{i:05d}" for i in range(12_000)]
    path = tmp_path / "words.txt"
    path.write_text("\ufeff# our list\n" + "\n".join(words + ["法轮", ""]) + "\n", encoding="utf-8")
    started = time.perf_counter()
    out = cli("words", "import", "--list", "block", str(path)).output
    took = time.perf_counter() - started
    assert "12000 added, 1 already listed" in out
    assert took < 20, f"importing 12,000 words took {took:.1f} s"
    with cli.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.words)
                            .where(tables.words.c.list == "block")).scalar() == 12_001
    # Exported (list) and imported again: nothing new.
    again = tmp_path / "again.txt"
    again.write_text(cli("words", "list", "--list", "block").output, encoding="utf-8")
    assert "0 added, 12001 already listed" in cli("words", "import", "--list", "block", str(again)).output

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9\n".encode("latin-1"))
    assert "not UTF-8" in cli("words", "import", "--list", "block", str(latin1), ok=False).output


def test_blacklist_commands(cli, tmp_path):
    out = cli("blacklist", "add", "--account", "alice", "--note", "complained", "+86 138 0013 8000",
              "13900139000").output
    assert "2 added" in out
    assert "1 added" in cli("blacklist", "add", "--platform", "8613700137000").output
    bad = cli("blacklist", "add", "--platform", "13700137001", "12345", ok=False)
    assert "not a mobile number: 12345" in bad.output and "nothing was changed" in bad.output
    listed = cli("blacklist", "list").output
    assert "13800138000  alice" in listed and "13700137000  (platform)" in listed and "complained" in listed
    assert "13700137000" not in cli("blacklist", "list", "--account", "alice").output
    exported = tmp_path / "alice.txt"
    cli("blacklist", "export", "--account", "alice", "-o", str(exported))
    assert exported.read_text().splitlines() == ["13800138000", "13900139000"]
    assert "1 removed" in cli("blacklist", "remove", "--account", "alice", "13900139000").output

    path = tmp_path / "numbers.csv"
    path.write_text("phone,name\n13900139000,张三\n+8613600136000\n# a comment\n1360013600x\n", encoding="utf-8")
    bad = cli("blacklist", "import", "--platform", str(path), ok=False)
    assert "line 5: 1360013600x" in bad.output and "nothing was imported" in bad.output
    out = cli("blacklist", "import", "--platform", "--skip-invalid", str(path)).output
    assert "2 added" in out
    assert cli("blacklist", "export", "--platform").output.splitlines() == \
        ["13700137000", "13900139000", "13600136000"]
    with cli.engine.connect() as conn:
        reasons = {r.phone: r.reason for r in conn.execute(select(tables.blacklist))}
    assert reasons["13600136000"] == "import" and reasons["13800138000"] == "manual"


def _held(cli, to: list[str]) -> int:
    async def send() -> int:
        writer = Writer(cli.engine)
        writer.start()
        try:
            directory = Directory(cli.engine, cli.cipher)
            out = await AcceptService(directory, writer).send(
                SendRequest(account=directory.by_username("alice"), to=to, content="【鸿雁】本周特价"))
        finally:
            writer.stop()
        assert out.ok
        return out.data["submission_id"]
    sid = asyncio.run(send())
    with cli.engine.begin() as conn:
        conn.execute(update(tables.submissions).where(tables.submissions.c.id == sid).values(state="held"))
        conn.execute(update(tables.messages).where(tables.messages.c.submission_id == sid).values(state="held"))
    return sid


def test_review_list_approve_reject(cli):
    cli("words", "add", "--list", "review", "特价")
    a = _held(cli, ["13800138000", "13900139000"])
    b = _held(cli, ["13700137000"])
    listed = cli("review", "list").output
    assert f"{a}  alice" in listed and "2/2 held  words: 特价" in listed and "【鸿雁】本周特价" in listed
    assert [i["submission_id"] for i in orjson.loads(cli("review", "list", "--json").output)] == [a, b]
    assert f"submission {a}: approved, 2 message(s) queued" in cli("review", "approve", str(a),
                                                                   "--operator", "ops:li").output
    again = cli("review", "approve", str(a), ok=False)
    assert f"submission {a} was already approved by ops:li" in again.output
    out = cli("review", "reject", str(b), "--reason", "spam").output
    assert f"submission {b}: rejected, 1 message(s) failed with REJECT, 1 refunded" in out
    assert "already rejected" in cli("review", "reject", str(b), ok=False).output
    assert "nothing is held" in cli("review", "list").output
    with cli.engine.connect() as conn:
        decided = review.decisions(conn, [a, b])
        assert acc.ledger_mismatches(conn) == []
        assert acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"] == 100 - 2
    assert decided[a]["operator"] == "ops:li"
    assert decided[b]["operator"].startswith("cli:") and decided[b]["reason"] == "spam"
