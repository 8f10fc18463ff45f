"""The schema, as SQLAlchemy Core tables. Alembic migrations are written from it.

Times on hot tables are epoch milliseconds (BIGINT): they compare and index the
same way on SQLite and PostgreSQL and cost nothing to convert on the hot path.
Money is an integer count of the smallest unit (a product's price per part).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# Ids of submissions and messages are handed out in blocks by the process that
# accepts them, so a batch of inserts needs no round trip to learn its ids.
sequences = Table(
    "sequences", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

nodes = Table(
    "nodes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("roles", String(64), nullable=False, default="all"),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
)

orgs = Table(
    "orgs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),   # entid / cid in the dialects
    Column("name", String(128), nullable=False),
    Column("state", String(16), nullable=False, default="active"),  # active | disabled
    Column("created_at", BigInteger, nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", Integer, ForeignKey("orgs.id"), nullable=False),
    Column("username", String(64), nullable=False, unique=True),
    # The API secret must be recoverable (dialects check md5(secret + timestamp)),
    # so it is encrypted with the configured key, never hashed.
    Column("secret_enc", Text, nullable=False),
    Column("key_id", String(32), nullable=False, unique=True),  # public half of the Bearer key
    Column("password_hash", Text),                               # console login, argon2
    Column("state", String(16), nullable=False, default="active"),  # active|locked|expired|disabled
    Column("expires_at", BigInteger),
    Column("ip_allowlist", Text, nullable=False, default=""),    # comma-separated CIDRs; empty = any
    Column("pay_type", String(8), nullable=False, default="account"),  # account | org
    Column("role", String(16), nullable=False, default="user"),  # user | admin (org admin)
    Column("extension", String(12), nullable=False, default=""),  # the account's source-number extension
    Column("report_url", Text),
    Column("mo_url", Text),
    Column("push_dialect", String(16), nullable=False, default="native"),
    Column("mo_push_dialect", String(16)),                       # replies' format, when not push_dialect's
    Column("refund_policy", String(16), nullable=False, default="failed"),  # failed | never
    Column("created_at", BigInteger, nullable=False),
)

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("price", Integer, nullable=False, default=1),   # units per billed part
    Column("channel_id", Integer, ForeignKey("channels.id")),
)

account_products = Table(
    "account_products", metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), primary_key=True),
)

balances = Table(
    "balances", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_type", String(8), nullable=False),       # account | org
    Column("owner_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False, default=0),  # 0 = not tied to a product
    Column("amount", BigInteger, nullable=False, default=0),
    UniqueConstraint("owner_type", "owner_id", "product_id"),
)

ledger = Table(
    "ledger", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("balance_id", Integer, ForeignKey("balances.id"), nullable=False),
    Column("kind", String(8), nullable=False),             # topup | debit | refund | adjust
    Column("amount", BigInteger, nullable=False),          # signed: debits are negative
    Column("submission_id", BigInteger),
    Column("message_id", BigInteger),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ledger_balance", "balance_id"),
)

channels = Table(
    "channels", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("protocol", String(16), nullable=False),
    Column("host", String(255), nullable=False, default="127.0.0.1"),
    Column("port", Integer, nullable=False, default=7890),
    Column("username", String(64), nullable=False, default=""),
    Column("secret_enc", Text, nullable=False, default=""),
    Column("access_code", String(21), nullable=False, default=""),
    Column("service_id", String(10), nullable=False, default=""),
    Column("mps", Integer, nullable=False, default=100),
    Column("window", Integer, nullable=False, default=16),
    Column("connections", Integer, nullable=False, default=1),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("options", Text, nullable=False, default="{}"),  # JSON
)

# Which channels carry which messages (hongyan.core.routing). A NULL account,
# product or carrier matches any; carrier holds hongyan.domain.numbers codes
# (cmcc, unicom, telecom, cbn, unknown).
routes = Table(
    "routes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("product_id", Integer, ForeignKey("products.id")),
    Column("carrier", String(8)),
    Column("channel_id", Integer, ForeignKey("channels.id"), nullable=False),
    Column("weight", Integer, nullable=False, default=1),
    Column("priority", Integer, nullable=False, default=0),   # lower is tried first
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("weight >= 1", name="ck_routes_weight_positive"),
)

submissions = Table(
    "submissions", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", Integer, nullable=False),
    Column("idempotency_key", String(128)),
    Column("request_hash", String(64)),
    Column("client_ref", String(64)),                      # sendid / batch id chosen by the caller
    Column("dialect", String(16), nullable=False, default="native"),
    Column("content", Text, nullable=False),
    Column("extno", String(12), nullable=False, default=""),
    Column("product_id", Integer),
    Column("balance_id", Integer),
    Column("recipients", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),           # accepted | held | scheduled | cancelled | rejected
    Column("scheduled_at", BigInteger),
    # The request's daily send window, seconds after local midnight (domain.windows).
    Column("window_start", Integer),
    Column("window_end", Integer),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "idempotency_key"),
    Index("ix_submissions_account_created", "account_id", "created_at"),
)

messages = Table(
    "messages", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("submission_id", BigInteger, nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("phone", String(20), nullable=False),
    Column("carrier", String(8), nullable=False, default=""),
    Column("parts", Integer, nullable=False),
    Column("cost", BigInteger, nullable=False),            # what this message was billed
    # held | scheduled | queued | submitting | submitted | delivered | failed | expired
    Column("state", String(12), nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("channel_id", Integer),
    Column("claimed_by", Integer),
    Column("claimed_at", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("submitted_at", BigInteger),
    Column("parts_done", Integer, nullable=False, default=0),
    Column("status", String(24)),                          # carrier status: DELIVRD, UNDELIV, ...
    Column("done_at", BigInteger),
    Column("refunded", Boolean, nullable=False, default=False),
    Column("note", Text),                                  # why it was retried or failed
    Index("ix_messages_state_due", "state", "due_at"),
    Index("ix_messages_submission", "submission_id"),
)

# The carrier's id of every submitted part, to match reports to messages.
carrier_ids = Table(
    "carrier_ids", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("channel_id", Integer, nullable=False),
    Column("carrier_id", String(64), nullable=False),
    Column("message_id", BigInteger, nullable=False),
    Column("part_no", Integer, nullable=False),
    Column("status", String(24)),                          # set when this part's report came
    Index("ix_carrier_ids_lookup", "channel_id", "carrier_id"),
    Index("ix_carrier_ids_message", "message_id"),
)

# Reports whose carrier id is not (yet) known: kept and matched again later.
orphan_reports = Table(
    "orphan_reports", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("channel_id", Integer, nullable=False),
    Column("carrier_id", String(64), nullable=False),
    Column("status", String(24), nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("phone", String(20), nullable=False, default=""),
    Column("done_at", BigInteger),
    Column("received_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)

mo = Table(
    "mo", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account_id", Integer),                         # None when no account's number matched
    Column("channel_id", Integer, nullable=False),
    Column("phone", String(20), nullable=False),
    Column("dest", String(21), nullable=False),
    Column("extno", String(21), nullable=False, default=""),
    Column("content", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("ix_mo_account", "account_id", "id"),
)

# Reports and MO for customers: the push outbox and the log the API is polled from.
events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False),
    Column("kind", String(8), nullable=False),             # report | mo
    Column("ref_id", BigInteger, nullable=False),          # message id or mo id
    Column("payload", Text, nullable=False),               # JSON, the native shape
    Column("created_at", BigInteger, nullable=False),
    Column("push_state", String(8), nullable=False),       # pending | done | dead | none
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Index("ix_events_push", "push_state", "next_at"),
    Index("ix_events_account_kind", "account_id", "kind", "id"),
)

# Platform staff who sign in to the web console's operator pages. Kept apart
# from customer accounts: an operator has no API key, balance or org.
operators = Table(
    "operators", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),              # argon2
    Column("created_at", BigInteger, nullable=False),
)

# kxt3 replay protection: each request's 18-digit timestamp is accepted once per
# account. Rows older than a day are pruned, so the guard covers one day.
kxt3_timestamps = Table(
    "kxt3_timestamps", metadata,
    Column("account_id", Integer, nullable=False),
    Column("timestamp", String(18), nullable=False),
    Column("used_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "timestamp"),
    Index("ix_kxt3_timestamps_used_at", "used_at"),
)

# Rule settings per account, as JSON (hongyan.core.rules.RuleSettings). The row
# with account_id 0 holds the platform's defaults, under every account's own.
account_rules = Table(
    "account_rules", metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=False),
    Column("settings", Text, nullable=False, default="{}"),
    Column("updated_at", BigInteger, nullable=False),
)

# Messages (numbers x parts) accepted per account per calendar month, kept for
# the accounts that have a monthly quota: the quota check reads one row.
account_usage = Table(
    "account_usage", metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=False),
    Column("period", String(6), primary_key=True),      # YYYYMM, server local time
    Column("used", BigInteger, nullable=False, default=0),
)

# Numbers that must not be sent to: account_id 0 is the platform's list.
blacklist = Table(
    "blacklist", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False, default=0),
    Column("phone", String(20), nullable=False),
    Column("reason", String(16), nullable=False, default="manual"),  # manual | optout | import
    Column("note", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "phone"),
)

# Sensitive words: ``block`` refuses a message, ``review`` holds it for an operator.
words = Table(
    "words", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list", String(8), nullable=False),
    Column("word", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("list", "word"),
)

# Operators' decisions on held submissions (hongyan.core.review): one per submission, with who and why.
reviews = Table(
    "reviews", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("submission_id", BigInteger, nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("decision", String(8), nullable=False),         # approved | rejected
    Column("operator", String(128), nullable=False),       # e.g. "cli:root", "api:ops-admin"
    Column("reason", Text, nullable=False, default=""),
    Column("messages", Integer, nullable=False),           # held messages it moved
    Column("refunded", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("submission_id"),
    Index("ix_reviews_account", "account_id", "id"),
)
