"""SMGP 3.0 client channel: the SP side of China Telecom's SMS gateway (SMGW).

Built on :mod:`hongyan.channels.link`: ``config.connections`` TCP links,
each logging in with Login (LoginMode 2, "transmit": submits out, reports
and MO in on the same connection), at most ``config.window`` unanswered
Submits per link and ``config.mps`` over all links together. For gateways
that keep the directions apart, ``receive_connections`` adds that many links
logged in to receive only (LoginMode 1); the submitting links then log in to
send only (LoginMode 0).

Long messages go as parts with a user data header in MsgContent and the
TP_udhi TLV set to 1; with the ``pk_tlvs`` option each part also carries the
PkTotal / PkNumber TLVs, which some provincial gateways want. A Submit_Resp
with Status 1 (system busy) or one of ``retry_statuses`` slows the channel
down and fails the message retryable; any other non-zero Status is final.

Reports are matched by the MsgID of the Submit_Resp (stored as 20 hex
digits, see :func:`hongyan.protocols.smgp.wire.msg_id_to_str`), and their
Deliver_Resp leaves only once the core has committed them. Long MO (TP_udhi
with a UDH, or PkTotal / PkNumber TLVs alone) is joined before the core sees
it.

Options (``config.options``), besides those of :mod:`hongyan.channels.link`
(``active_test_interval`` is the keepalive interval): ``receive_connections``
(0); ``pk_tlvs`` (false); ``retry_statuses`` (more Status values meaning
"slow down", e.g. "75,76"); ``priority`` (0-3), ``fee_type``, ``fee_code``,
``fixed_fee``, ``valid_time``, ``charge_term_id``, copied into every Submit;
``msg_src`` (the SP code, sent as the MsgSrc TLV when set).
"""
from __future__ import annotations

import logging

from hongyan.channels.base import ChannelConfig, ChannelEvents, Outbound, Report
from hongyan.channels.link import LinkChannel, WindowedLink, udh_concat
from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.smgp import tlv as smgp_tlv
from hongyan.protocols.smgp.connection import Connection
from hongyan.protocols.smgp.constants import DELIVER, V30, LoginMode, MsgFormat, Status
from hongyan.protocols.smgp.errors import SmgpError, SmgpProtocolError
from hongyan.protocols.smgp.events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Exit, ExitResp, Login, LoginResp, Submit,
    SubmitResp,
)
from hongyan.protocols.smgp.tlv import Tag, Tlv
from hongyan.protocols.smgp.wire import (
    authenticator_client, authenticator_server, msg_id_to_str, timestamp_now,
)
from hongyan.protocols.smgp.wire import encode as encode_pdu

log = logging.getLogger(__name__)

# Submit_Resp Status values that mean "too much right now": slow down and retry.
RETRY_STATUSES = frozenset({Status.SYSTEM_BUSY})

# Login_Resp Status values, for log lines a person can act on.
LOGIN_STATUS = {
    Status.SYSTEM_BUSY: "gateway busy",
    Status.TOO_MANY_CONNECTIONS: "too many connections for this account",
    Status.BAD_STRUCTURE: "bad message structure",
    Status.BAD_IP_ADDRESS: "this address is not allowed for the account",
    Status.AUTH_FAILED: "authentication failed (account or shared secret)",
    Status.VERSION_TOO_HIGH: "version too high",
}

_NO_MSG_ID = bytes(10)
_SUBMIT_TEXT_OPTIONS = ("fee_type", "fee_code", "fixed_fee", "valid_time", "charge_term_id")


_FLAGS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


def _flag(name: str, value) -> bool:
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _int_list(value) -> list[int]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = value.replace(" ", "").split(",")
    elif isinstance(value, int):
        value = [value]
    return [int(v) for v in value if str(v) != ""]


class _Link(WindowedLink):
    codec_error = SmgpError
    state_error = SmgpProtocolError
    keepalive_name = "Active_Tests"

    def __init__(self, channel: SmgpChannel, index: int) -> None:
        super().__init__(channel, index)
        self.mode = LoginMode.TRANSMIT
        self.auth_client = b""
        self._handlers = {
            SubmitResp: self._on_submit_resp,
            Deliver: self._on_deliver,
            ActiveTest: self._on_active_test,
            ActiveTestResp: lambda ev, out: self.keepalive_answered(),
            LoginResp: self._on_login_resp,
            Exit: self._on_exit,
            ExitResp: self._on_exit_resp,
        }

    def new_codec(self) -> Connection:
        return Connection("client", V30)

    def login(self) -> bytes:
        cfg = self.ch.config
        ts = timestamp_now()
        self.auth_client = authenticator_client(cfg.username, cfg.password, ts)
        return self.conn.send(Login(self.conn.next_sequence(), cfg.username, self.auth_client,
                                    self.mode, ts, V30))

    def logout(self) -> bytes:
        return self.conn.send(Exit(self.conn.next_sequence()))

    def keepalive(self) -> bytes:
        return self.conn.send(ActiveTest(self.conn.next_sequence()))

    def answer_bad_pdu(self, err: Exception) -> bytes | None:
        # A Deliver we cannot read is refused so the gateway does not wait for it.
        if getattr(err, "request_id", None) == DELIVER and err.sequence_id is not None:
            try:
                return self.conn.send(DeliverResp(err.sequence_id, _NO_MSG_ID, Status.BAD_STRUCTURE))
            except SmgpError:
                return None
        return None

    def _on_login_resp(self, ev: LoginResp, out: list[bytes]) -> None:
        if ev.status != 0:
            log.error("%r: gateway refused Login: status %d (%s)", self, ev.status,
                      LOGIN_STATUS.get(ev.status, "other error"))
            self.login_refused()
            return
        if ev.authenticator != authenticator_server(0, self.auth_client, self.ch.config.password):
            # Some gateways send zeros here; the login is valid all the same.
            log.debug("%r: AuthenticatorServer does not match", self)
        log.info("%r logged in to %s:%d", self, self.ch.config.host, self.ch.config.port)
        self.logged_in()

    def _on_submit_resp(self, ev: SubmitResp, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_id, None)
        if entry is None:
            return  # answered after its timeout: the message was already failed
        status = ev.status
        if status == 0:
            self.ch.part_accepted(entry, msg_id_to_str(ev.msg_id))
        elif status in self.ch._retry_statuses:
            self.ch.part_refused(entry, f"SMGP:{status}", True, busy=True)
        else:
            self.ch.part_refused(entry, f"SMGP:{status}", False)

    def _on_deliver(self, ev: Deliver, out: list[bytes]) -> None:
        ch = self.ch
        resp = self.conn.send(DeliverResp(ev.sequence_id, ev.msg_id, 0))
        r = ev.report
        if r is not None:
            # The gateway hears "got it" only once the core has committed the
            # report: if we die before that, it delivers the report again.
            ch.events.report(Report(ch.config.id, msg_id_to_str(r.msg_id), r.stat,
                                    r.stat == "DELIVRD", ev.src_term_id, ch.done_at(r.done_date),
                                    ack=self.ack_later(resp)))
            return
        content = ev.msg_content
        concat = None
        if smgp_tlv.get(ev.tlvs, Tag.TP_UDHI) == 1:
            concat, content = udh_concat(content)
        else:
            total = smgp_tlv.get(ev.tlvs, Tag.PK_TOTAL)
            if isinstance(total, int) and total > 1:
                # Without a UDH there is no reference number: the parts of one
                # phone's long MO to one number are told apart by their count.
                seq = smgp_tlv.get(ev.tlvs, Tag.PK_NUMBER, 1)
                concat = ("pk", total, seq if isinstance(seq, int) else 1)
        if not ch.take_mo(ev.src_term_id, ev.dest_term_id, content, ev.msg_format, concat,
                          self.ack_later(resp)):
            out.append(resp)

    def _on_active_test(self, ev: ActiveTest, out: list[bytes]) -> None:
        out.append(self.conn.send(ActiveTestResp(ev.sequence_id)))

    def _on_exit(self, ev: Exit, out: list[bytes]) -> None:
        log.info("%r: gateway sent Exit", self)
        self.close_with(out, self.conn.send(ExitResp(ev.sequence_id)))

    def _on_exit_resp(self, ev: ExitResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()


class SmgpChannel(LinkChannel):
    """An SMGP 3.0 carrier connection, as many TCP links as configured."""

    link_class = _Link
    protocol = "smgp"
    keepalive_option = "active_test_interval"

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        super().__init__(config, events)
        opt = config.options
        try:
            receivers = int(opt.get("receive_connections", 0))
        except (TypeError, ValueError):
            receivers = -1
        if not 0 <= receivers <= 64:
            raise ValueError(f"channel {config.name!r}: receive_connections must be a whole "
                             f"number 0..64, not {opt.get('receive_connections')!r}")
        if receivers:
            for link in self._links:
                link.mode = LoginMode.SEND
            for _ in range(receivers):
                link = _Link(self, len(self._links))
                link.mode = LoginMode.RECEIVE
                self._links.append(link)
        try:
            self._pk_tlvs = _flag("pk_tlvs", opt.get("pk_tlvs", False))
        except ValueError as e:
            raise ValueError(f"channel {config.name!r}: {e}") from None
        try:
            self._retry_statuses = RETRY_STATUSES | set(_int_list(opt.get("retry_statuses")))
        except ValueError:
            raise ValueError(f"channel {config.name!r}: retry_statuses must be Status numbers, "
                             f"e.g. \"75,76\"") from None
        self._submit_extra: dict = {k: str(opt[k]) for k in _SUBMIT_TEXT_OPTIONS if k in opt}
        if "priority" in opt:
            try:
                priority = int(opt["priority"])
            except (TypeError, ValueError):
                priority = -1
            if not 0 <= priority <= 3:
                raise ValueError(f"channel {config.name!r}: priority must be 0..3, "
                                 f"not {opt['priority']!r}")
            self._submit_extra["priority"] = priority
        self._extra_tlvs: tuple[Tlv, ...] = ()
        if opt.get("msg_src"):
            self._extra_tlvs = (Tlv(Tag.MSG_SRC, str(opt["msg_src"])),)
        try:
            # A field that does not fit its octets would fail every message; say so once, now.
            encode_pdu(Submit(0, ("0",), b"", service_id=config.service_id,
                          src_term_id=config.access_code, tlvs=self._extra_tlvs,
                          **self._submit_extra))
        except SmgpError as e:
            raise ValueError(f"channel {config.name!r}: {e}") from None

    @property
    def connected(self) -> bool:
        return any(link.bound and link.mode != LoginMode.RECEIVE for link in self._links)

    async def _pump(self, link: _Link) -> None:
        # A link logged in to receive only never takes messages off the queue.
        if link.mode != LoginMode.RECEIVE:
            await super()._pump(link)

    def encode(self, link: _Link, msg: Outbound) -> list[tuple[int, bytes]]:
        p = plan(msg.text)
        chunks = p.chunks
        if not chunks:
            raise ValueError("empty text")
        fmt = MsgFormat.UCS2 if p.encoding == "ucs2" else MsgFormat.ASCII
        cfg = self.config
        conn = link.conn
        common = dict(dest_term_ids=(msg.phone,), need_report=1 if msg.need_report else 0,
                      service_id=cfg.service_id, msg_format=int(fmt),
                      src_term_id=msg.source or cfg.access_code, **self._submit_extra)
        total = len(chunks)
        ref = self.next_ref() if total > 1 else 0
        parts = []
        for i, chunk in enumerate(chunks, 1):
            body = encode_chunk(chunk, p.encoding)
            tlvs = self._extra_tlvs
            if total > 1:
                body = concat_udh(ref, total, i) + body
                tlvs = (Tlv(Tag.TP_UDHI, 1),) + tlvs
                if self._pk_tlvs:
                    tlvs += (Tlv(Tag.PK_TOTAL, total), Tlv(Tag.PK_NUMBER, i))
            seq = conn.next_sequence()
            parts.append((seq, conn.send(Submit(seq, msg_content=body, tlvs=tlvs, **common))))
        return parts
