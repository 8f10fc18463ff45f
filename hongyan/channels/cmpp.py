"""CMPP 2.0 and 3.0 client channel: the SP side of a carrier's ISMG.

Each of ``config.connections`` TCP links binds with CMPP_CONNECT and then runs
a pump that moves messages from the channel's shared queue onto the wire; the
links, windows, throttle, reconnects and timeouts are
:mod:`hongyan.channels.link`. This module says how CMPP logs in, what a
SUBMIT looks like, and what the gateway's answers mean.

The version is CMPP 2.0 for protocol ``cmpp2`` and 3.0 for ``cmpp3``; a
``cmpp2`` channel also runs 3.0 with the option ``version: "3.0"``. 3.0 only
changes layouts (CONNECT Version 0x30, four-octet Status/Result, 32-octet
terminal ids with a type octet, LinkID); what the answers mean is the same.

Options read from ``config.options`` (times in seconds):
``active_test_interval`` (30), ``submit_timeout`` (30), ``stop_timeout`` (3),
``connect_timeout`` (10), ``reconnect_initial`` (0.5), ``reconnect_max`` (30),
``mo_timeout`` (300, how long a long MO's parts wait for each other),
``version`` ("2.0" or "3.0"), and ``fee_user_type`` / ``fee_type`` /
``fee_code`` / ``fee_terminal_id`` / ``msg_level`` / ``valid_time`` (and, in
3.0, ``fee_terminal_type``), passed into every SUBMIT for gateways that
insist on particular values.
"""
from __future__ import annotations

import logging
import time

from hongyan.channels.base import ChannelConfig, ChannelEvents, Outbound, Report
from hongyan.channels.link import LinkChannel, WindowedLink, udh_concat
from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.cmpp import auth, msgid
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.constants import CMPP_CONNECT_RESP, CMPP_DELIVER
from hongyan.protocols.cmpp.errors import CmppError, CmppProtocolError
from hongyan.protocols.cmpp.events import (
    ActiveTest, ActiveTestResp, Connect, ConnectResp, Deliver, DeliverResp, Submit, SubmitResp,
    Terminate, TerminateResp,
)

log = logging.getLogger(__name__)

CMPP2 = 0x20
CMPP3 = 0x30
RESULT_FLOW_CONTROL = 8
# The ``version`` option as operators write it (JSON may turn "3.0" into 3.0).
VERSIONS = {"2.0": CMPP2, "2": CMPP2, "3.0": CMPP3, "3": CMPP3}

# CMPP_CONNECT_RESP Status values, for log lines a person can act on.
CONNECT_STATUS = {
    1: "bad message structure",
    2: "illegal source address (SP id)",
    3: "authentication failed (password)",
    4: "version too high",
}

# SUBMIT fields an operator may set, and the type each is given (options
# from the command line arrive as text).
_SUBMIT_OPTIONS = {"fee_user_type": int, "fee_type": str, "fee_code": str, "fee_terminal_id": str,
                   "msg_level": int, "valid_time": str}
_SUBMIT_OPTIONS_30 = {"fee_terminal_type": int}


class _Link(WindowedLink):
    """One CMPP TCP connection slot, in the channel's version."""

    codec_error = CmppError
    state_error = CmppProtocolError
    keepalive_name = "ACTIVE_TESTs"

    def __init__(self, channel: CmppChannel, index: int) -> None:
        super().__init__(channel, index)
        self.bound_at = 0.0
        self.auth_source = b""
        self._handlers = {
            SubmitResp: self._on_submit_resp,
            Deliver: self._on_deliver,
            ActiveTest: self._on_active_test,
            ActiveTestResp: self._on_active_test_resp,
            ConnectResp: self._on_connect_resp,
            Terminate: self._on_terminate,
            TerminateResp: self._on_terminate_resp,
        }

    def new_codec(self) -> Connection:
        return Connection(role="client", version=self.ch.version)

    def login(self) -> bytes:
        cfg = self.ch.config
        ts = auth.timestamp_now()
        self.auth_source = auth.authenticator_source(cfg.username, cfg.password, ts)
        return self.conn.send(Connect(sequence_id=self.conn.next_sequence(), source_addr=cfg.username,
                                      authenticator=self.auth_source, version=self.ch.version,
                                      timestamp=ts))

    def logout(self) -> bytes:
        return self.conn.send(Terminate(sequence_id=self.conn.next_sequence()))

    def keepalive(self) -> bytes:
        return self.conn.send(ActiveTest(sequence_id=self.conn.next_sequence()))

    def answer_bad_pdu(self, err: CmppError) -> bytes | None:
        # A DELIVER we cannot read is refused so the gateway does not wait for it.
        if err.command_id == CMPP_DELIVER and err.sequence_id is not None:
            return self.conn.send(DeliverResp(sequence_id=err.sequence_id, msg_id=0, result=1))
        if err.command_id == CMPP_CONNECT_RESP and not self.bound:
            # The 2.0 and 3.0 CONNECT_RESP differ in length: a gateway of the
            # other version answered (typically "version too high" in its
            # own layout). Waiting for another answer would only time out.
            log.error("%r: the gateway's CONNECT_RESP is not in the CMPP %s layout (%s); "
                      "it probably speaks only the other version: check the channel's version",
                      self, self.ch.version_text, err)
            self.login_refused()
        return None

    # -- answers ---------------------------------------------------------
    def _on_connect_resp(self, ev: ConnectResp, out: list[bytes]) -> None:
        if ev.status != 0:
            log.error("%r: gateway refused CONNECT: status %d (%s)", self, ev.status,
                      CONNECT_STATUS.get(ev.status, "other error"))
            self.login_refused()
            return
        expected = auth.authenticator_ismg(ev.status, self.auth_source, self.ch.config.password,
                                           self.ch.version)
        if ev.authenticator != expected:
            # Several gateways send zeros here; the bind is valid all the same.
            log.debug("%r: AuthenticatorISMG does not match", self)
        self.bound_at = time.monotonic()
        log.info("%r bound to %s:%d", self, self.ch.config.host, self.ch.config.port)
        self.logged_in()

    def _on_submit_resp(self, ev: SubmitResp, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_id, None)
        if entry is None:
            return  # answered after its timeout: the message was already failed
        result = ev.result
        if result == 0:
            self.ch.part_accepted(entry, msgid.to_str(ev.msg_id))
        elif result == RESULT_FLOW_CONTROL:
            self.ch.part_refused(entry, "CMPP:8", True, busy=True)
        else:
            self.ch.part_refused(entry, f"CMPP:{result}", False)

    def _on_deliver(self, ev: Deliver, out: list[bytes]) -> None:
        ch = self.ch
        resp = self.conn.send(DeliverResp(sequence_id=ev.sequence_id, msg_id=ev.msg_id, result=0))
        r = ev.report
        if r is not None:
            # The gateway hears "got it" only once the core has committed the
            # report: if we die before that, it delivers the report again.
            stat = r.stat
            ch.events.report(Report(ch.config.id, msgid.to_str(r.msg_id), stat, stat == "DELIVRD",
                                    r.dest_terminal_id, ch.done_at(r.done_time), ack=self.ack_later(resp)))
            return
        concat, content = udh_concat(ev.msg_content) if ev.tp_udhi else (None, ev.msg_content)
        if not ch.take_mo(ev.src_terminal_id, ev.dest_id, content, ev.msg_fmt, concat, self.ack_later(resp)):
            out.append(resp)

    def _on_active_test(self, ev: ActiveTest, out: list[bytes]) -> None:
        out.append(self.conn.send(ActiveTestResp(sequence_id=ev.sequence_id)))

    def _on_active_test_resp(self, ev: ActiveTestResp, out: list[bytes]) -> None:
        self.keepalive_answered()

    def _on_terminate(self, ev: Terminate, out: list[bytes]) -> None:
        log.info("%r: gateway sent TERMINATE", self)
        self.close_with(out, self.conn.send(TerminateResp(sequence_id=ev.sequence_id)))

    def _on_terminate_resp(self, ev: TerminateResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()


class CmppChannel(LinkChannel):
    """A CMPP 2.0 or 3.0 carrier connection, as many TCP links as configured."""

    link_class = _Link
    protocol = "cmpp"
    keepalive_option = "active_test_interval"

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        # The links read the version when they are made, in the base's __init__.
        self.version = _version(config)
        super().__init__(config, events)
        opt = config.options
        fields = dict(_SUBMIT_OPTIONS)
        if self.version == CMPP3:
            fields.update(_SUBMIT_OPTIONS_30)
        else:
            for name in _SUBMIT_OPTIONS_30:
                if name in opt:
                    raise ValueError(f"channel {config.name!r}: {name} is a CMPP 3.0 field; "
                                     f"this channel speaks CMPP 2.0")
        self._submit_extra = {}
        for name, kind in fields.items():
            if name in opt:
                try:
                    self._submit_extra[name] = kind(opt[name])
                except (TypeError, ValueError):
                    raise ValueError(f"channel {config.name!r}: option {name} must be "
                                     f"{'a whole number' if kind is int else 'text'}, "
                                     f"not {opt[name]!r}") from None

    @property
    def version_text(self) -> str:
        return "3.0" if self.version == CMPP3 else "2.0"

    def encode(self, link: _Link, msg: Outbound) -> list[tuple[int, bytes]]:
        cfg = self.config
        p = plan(msg.text)
        encoding = p.encoding
        chunks = p.chunks
        if not chunks:
            raise ValueError("empty text")
        total = len(chunks)
        conn = link.conn
        common = dict(dest_terminal_ids=(msg.phone,), pk_total=total,
                      registered_delivery=1 if msg.need_report else 0,
                      service_id=cfg.service_id, msg_fmt=8 if encoding == "ucs2" else 0,
                      msg_src=cfg.username, src_id=msg.source or cfg.access_code, **self._submit_extra)
        if total == 1:
            seq = conn.next_sequence()
            return [(seq, conn.send(Submit(sequence_id=seq, msg_content=encode_chunk(chunks[0], encoding),
                                           pk_number=1, tp_udhi=0, **common)))]
        ref = self.next_ref()
        parts = []
        for i, chunk in enumerate(chunks):
            seq = conn.next_sequence()
            content = concat_udh(ref, total, i + 1) + encode_chunk(chunk, encoding)
            parts.append((seq, conn.send(Submit(sequence_id=seq, msg_content=content, pk_number=i + 1,
                                                tp_udhi=1, **common))))
        return parts


def _version(config: ChannelConfig) -> int:
    """The CMPP version of a channel: its protocol name, or the ``version`` option."""
    implied = CMPP3 if config.protocol == "cmpp3" else CMPP2
    raw = config.options.get("version")
    if raw is None or raw == "":
        return implied
    version = VERSIONS.get(str(raw).strip())
    if version is None:
        raise ValueError(f"channel {config.name!r}: CMPP version must be \"2.0\" or \"3.0\", "
                         f"not {raw!r}")
    if config.protocol == "cmpp3" and version != CMPP3:
        raise ValueError(f"channel {config.name!r}: protocol cmpp3 contradicts version {raw!r}")
    return version
