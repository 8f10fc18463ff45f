"""Settings: defaults, then the TOML config file, then HONGYAN_* environment variables.

The config file is ``hongyan.toml`` in the working directory unless ``--config`` or
``HONGYAN_CONFIG`` names another. ``hongyan init`` writes one with a fresh secret key.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "hongyan.toml"


@dataclass
class Settings:
    database_url: str = "sqlite:///var/hongyan.db"
    # Fernet key (urlsafe base64, 32 bytes) that encrypts API and channel secrets.
    secret_key: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Which services this process runs: api, dispatch, notify (or all).
    roles: list[str] = field(default_factory=lambda: ["all"])
    node_name: str = ""
    # The built-in carrier simulator, started in-process by `serve` when enabled.
    simulator: bool = False
    simulator_port: int = 7891
    simulator_report_delay: float = 0.5
    simulator_fail_rate: float = 0.0
    # SQLite durability: FULL fsyncs each group commit; NORMAL survives a process
    # crash but may lose the last commits on power loss.
    sqlite_synchronous: str = "FULL"
    # Group commit: the longest a request waits for others to share its commit.
    commit_window_ms: float = 2.0
    commit_max_batch: int = 512
    dispatch_batch: int = 1000
    # Redis for counters several processes share (rate limits, per-number
    # frequency, concurrent requests); "" keeps them in this process.
    redis_url: str = ""
    # Pushes
    push_batch: int = 500
    push_timeout: float = 10.0
    push_max_attempts: int = 20          # back-off 1 s doubling to 10 min: about a day and a half
    # A message submitted this long ago without its report is closed as expired
    # (status EXPIRED), refunded by the account's refund policy, and reported.
    report_timeout_hours: float = 72.0
    # Session front doors for customers (role api). Port 0 picks a free port
    # (shown in /healthz); a negative port, or none, turns that server off.
    # Loopback by default, like http_host: opening them to customers is a choice.
    server_host: str = "127.0.0.1"
    cmpp_server_port: int | None = 7890
    smpp_server_port: int | None = 2775
    server_max_sessions: int = 4         # logged-in sessions per account, per server
    server_idle_timeout: float = 180.0   # seconds without a PDU (ACTIVE_TEST counts) before a session is closed
    config_path: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def has_role(self, role: str) -> bool:
        return "all" in self.roles or role in self.roles

    @staticmethod
    def listen_port(port: int | None) -> int | None:
        """A session server's port as configured: None when that server is off."""
        return None if port is None or port < 0 else port

    def resolved_database_url(self) -> str:
        """Relative SQLite paths are taken from the config file's folder."""
        url = self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            base = Path(self.config_path).parent if self.config_path else Path.cwd()
            path = (base / url[len(prefix):]).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            url = prefix + str(path)
        return url


# What an environment variable says to turn an optional setting (a server's port) off.
_NONE_WORDS = ("", "none", "null", "off")


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, list):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def load(path: str | None = None, **overrides: Any) -> Settings:
    settings = Settings()
    path = path or os.environ.get("HONGYAN_CONFIG") or DEFAULT_CONFIG
    names = {f.name for f in dataclasses.fields(Settings)}
    if Path(path).exists():
        with open(path, "rb") as f:
            data = tomllib.load(f)
        for key, value in data.items():
            if key in names:
                setattr(settings, key, value)
        settings.config_path = str(Path(path).resolve())
    optional = {f.name for f in dataclasses.fields(Settings) if "None" in str(f.type)}
    for name in names:
        env = os.environ.get("HONGYAN_" + name.upper())
        if env is not None:
            if name in optional and env.strip().lower() in _NONE_WORDS:
                setattr(settings, name, None)
            else:
                setattr(settings, name, _coerce(env, getattr(settings, name)))
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    if isinstance(settings.roles, str):
        settings.roles = [settings.roles]
    return settings


def write_config(path: str, values: dict[str, Any]) -> None:
    lines = ["# Hongyan configuration. Every key can be overridden by HONGYAN_<KEY>."]
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]".replace("'", '"'))
        else:
            lines.append(f'{key} = "{value}"')
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
