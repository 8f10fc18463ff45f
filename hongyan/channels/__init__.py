"""Carrier channels: one module per protocol behind the interface in ``base``.

Each carrier protocol has a client channel and a simulator (the carrier side,
for tests, the demo and the benchmark). Both are found here by protocol name,
imported only when used.
"""
from __future__ import annotations

import importlib

from .base import Channel, ChannelConfig, ChannelEvents

# protocol -> (module, class) of the client channel.
CARRIER_CLIENTS = {
    "cmpp2": ("cmpp", "CmppChannel"),
    "cmpp3": ("cmpp", "CmppChannel"),
    "smpp": ("smpp", "SmppChannel"),
    "smgp": ("smgp", "SmgpChannel"),
    "sgip": ("sgip", "SgipChannel"),
}
ALIASES = {"cmpp": "cmpp2"}

# HTTP upstreams: another platform reached through a vendor API, by dialect.
UPSTREAM_CLIENTS = {
    "http-httpbatch": ("upstream_httpbatch", "HttpBatchClient"),
    "http-qxt": ("upstream_qxt", "QxtClient"),
    "http-k1680": ("upstream_k1680", "K1680Client"),
    "http-qmsg": ("upstream_qmsg", "QmsgClient"),
    "http-kxt3": ("upstream_kxt3", "Kxt3Client"),
}

# protocol -> (module, class) of its simulator. Every simulator takes
# (host, port, accounts, report_delay, fail_rate) as keywords, has async
# start()/stop(), a ``port`` property, ``stats`` and inject_mo(phone, dest, text).
SIMULATORS = {
    "cmpp2": ("simulator", "CmppSimulator"),
    "cmpp3": ("simulator", "CmppSimulator"),
    "smpp": ("sim_smpp", "SmppSimulator"),
    "smgp": ("sim_smgp", "SmgpSimulator"),
    "sgip": ("sim_sgip", "SgipSimulator"),   # also sp_host/sp_port: where it delivers
}

PROTOCOLS = (*CARRIER_CLIENTS, *UPSTREAM_CLIENTS)


def _load(module: str, cls: str):
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_channel(config: ChannelConfig, events: ChannelEvents) -> Channel:
    protocol = ALIASES.get(config.protocol, config.protocol)
    if protocol in CARRIER_CLIENTS:
        return _load(*CARRIER_CLIENTS[protocol])(config, events)
    if protocol in UPSTREAM_CLIENTS:
        from .upstream import UpstreamChannel
        client = _load(*UPSTREAM_CLIENTS[protocol])(config)
        return UpstreamChannel(config, events, client)
    raise ValueError(f"channel {config.name!r}: unknown protocol {config.protocol!r} "
                     f"(known: {', '.join(PROTOCOLS)})")


def make_simulator(protocol: str, **kwargs):
    """The simulator that plays the carrier for ``protocol`` (not started)."""
    protocol = ALIASES.get(protocol, protocol)
    if protocol not in SIMULATORS:
        raise ValueError(f"no simulator for protocol {protocol!r} (known: {', '.join(SIMULATORS)})")
    return _load(*SIMULATORS[protocol])(**kwargs)
