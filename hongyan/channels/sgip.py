"""SGIP 1.2 client channel: the SP side of China Unicom's SMG.

SGIP carries requests one way per TCP connection, so the channel has two
halves:

- **Submit links** (:mod:`hongyan.channels.link`): ``config.connections``
  connections the channel opens to the SMG (``config.host``:``config.port``),
  each logging in with Bind, Login Type 1, then sending Submit with at most
  ``config.window`` unanswered per link and ``config.mps`` over all links.
- **The listener**: the SMG connects to the SP to deliver MO messages
  (Deliver), status reports (Report) and subscriber changes (UserRpt), logging
  in with Bind, Login Type 2. The channel listens on the ``listen_port``
  option and accepts only the login name and password it was told
  (``listen_login`` / ``listen_password``; by default the channel's own). A
  Deliver or Report is answered only once the core has committed it, so one
  lost before that is delivered again.

Every request carries a 12-octet Sequence Number (node id, MMDDhhmmss,
counter). The SMG's Submit_Resp echoes the Submit's, and the Report of that
Submit quotes it again: the triple is the message id. It is kept as 30
decimal digits, each of the three numbers zero-padded to 10
(:func:`carrier_id`). One generator serves all links of a channel, so two
links never use the same triple.

Numbers go to the SMG with the ``86`` country prefix the SGIP user number
field wants and come back without it. Long messages go as parts with a
concatenation user data header and TP_udhi 1; long MO parts are joined before
they reach the core.

Options (``config.options``; times in seconds): ``listen_port`` (8801),
``listen_host`` ("0.0.0.0"), ``listen_login`` / ``listen_password``,
``node_id`` (the SP's node number from the carrier, 3 + area code + corp id;
0), ``corp_id``, ``charge_number`` (21 zeros: the SP pays), ``fee_type`` (1),
``fee_value`` ("0"), ``given_value`` ("0"), ``agent_flag`` (0),
``morelateto_mt_flag`` (2), ``priority`` (0), ``retry_results`` (more
Submit_Resp results that mean "slow down", comma-separated; 11 always does),
and the options of :mod:`hongyan.channels.link` (``submit_timeout``,
``reconnect_initial``, ...). SGIP 1.2 has no link test PDU; a dead submit link
is found by its unanswered submits.
"""
from __future__ import annotations

import asyncio
import logging
import random

from hongyan.channels.base import ChannelConfig, ChannelEvents, Outbound, Report
from hongyan.channels.link import LinkChannel, PduLink, WindowedLink, udh_concat
from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.sgip import (
    Bind, BindResp, Connection, Deliver, DeliverResp, LoginType, ReportResp, ReportState,
    ReportType, Result, SequenceGenerator, SequenceNumber, SgipError, SgipProtocolError, Submit,
    SubmitResp, Unbind, UnbindResp, UserRpt, UserRptResp, encode,
)
from hongyan.protocols.sgip import Report as SgipReport
from hongyan.protocols.sgip.constants import CommandId

log = logging.getLogger(__name__)

# Submit_Resp results that mean "too much right now": slow down and retry.
BUSY_RESULTS = frozenset({Result.NODE_BUSY})

BIND_RESULT = {
    Result.BAD_LOGIN: "login name or password wrong",
    Result.DUPLICATE_LOGIN: "already logged in on this connection",
    Result.TOO_MANY_CONNECTIONS: "too many connections",
    Result.BAD_LOGIN_TYPE: "login type wrong",
}

CHARGE_SP = "0" * 21        # ChargeNumber that bills the SP, not the receiver
COUNTRY = "86"


def carrier_id(seq: SequenceNumber) -> str:
    """The message id of a Submit: its Sequence Number as 30 decimal digits."""
    return f"{seq.node_id:010d}{seq.timestamp:010d}{seq.number:010d}"


def national(number: str) -> str:
    """A user number as the core keeps it: without the 86 (or +86) prefix."""
    if number.startswith("+"):
        number = number[1:]
    if number.startswith(COUNTRY) and len(number) == 13:
        return number[2:]
    return number


def international(phone: str) -> str:
    """A national mobile number as the SGIP user number field wants it: 86 first."""
    return phone if phone.startswith(COUNTRY) and len(phone) == 13 else COUNTRY + phone


class _Link(WindowedLink):
    """One SP -> SMG submit connection slot (Bind, Login Type 1)."""

    codec_error = SgipError
    state_error = SgipProtocolError
    peer = "SMG"

    def __init__(self, channel: SgipChannel, index: int) -> None:
        super().__init__(channel, index)
        self._handlers = {
            BindResp: self._on_bind_resp,
            SubmitResp: self._on_submit_resp,
            Unbind: self._on_unbind,
            UnbindResp: self._on_unbind_resp,
        }

    def new_codec(self) -> Connection:
        return Connection("sp", node_id=self.ch._node_id)

    def login(self) -> bytes:
        cfg = self.ch.config
        return self.conn.send(Bind(self.ch._sequence(), LoginType.SP_TO_SMG, cfg.username, cfg.password))

    def logout(self) -> bytes:
        return self.conn.send(Unbind(self.ch._sequence()))

    def _on_bind_resp(self, ev: BindResp, out: list[bytes]) -> None:
        if ev.result != 0:
            log.error("%r: SMG refused Bind: result %d (%s)", self, ev.result,
                      BIND_RESULT.get(ev.result, "other error"))
            self.login_refused()
            return
        log.info("%r bound to %s:%d", self, self.ch.config.host, self.ch.config.port)
        self.logged_in()

    def _on_submit_resp(self, ev: SubmitResp, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_number, None)
        if entry is None:
            return  # answered after its timeout: the message was already failed
        result = ev.result
        if result == 0:
            self.ch.part_accepted(entry, carrier_id(ev.sequence_number))
        elif result in self.ch._busy:
            self.ch.part_refused(entry, f"SGIP:{result}", True, busy=True)
        else:
            self.ch.part_refused(entry, f"SGIP:{result}", False)

    def _on_unbind(self, ev: Unbind, out: list[bytes]) -> None:
        # Many SMGs close an idle submit link this way; the supervisor opens a new one.
        log.info("%r: SMG sent Unbind", self)
        self.close_with(out, self.conn.send(UnbindResp(ev.sequence_number)))

    def _on_unbind_resp(self, ev: UnbindResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()


class _Inbound(PduLink):
    """One connection the SMG opened to us (Bind, Login Type 2) to deliver MO and reports."""

    codec_error = SgipError
    state_error = SgipProtocolError
    peer = "SMG"

    def __init__(self, channel: SgipChannel) -> None:
        super().__init__()
        self.ch = channel
        self.conn = Connection("sp", node_id=channel._node_id)
        self.bound = False
        self.peername = "?"
        self.unacked = 0            # requests answered only once the core commits them
        self._unbind: SequenceNumber | None = None
        self._handlers = {
            Bind: self._on_bind,
            Deliver: self._on_deliver,
            SgipReport: self._on_report,
            UserRpt: self._on_userrpt,
            Unbind: self._on_unbind,
            UnbindResp: self._on_unbind_resp,
        }

    def __repr__(self) -> str:
        return f"<sgip inbound {self.ch.config.name} from {self.peername}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peername = f"{peer[0]}:{peer[1]}"
        self.ch._inbound.add(self)
        # The port is open to the network: a connection that never logs in is not kept.
        asyncio.get_running_loop().call_later(self.ch._connect_timeout, self._bind_deadline, transport)

    def _bind_deadline(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is transport and not self.bound:
            log.warning("%r: no Bind within %.0f s; closing", self, self.ch._connect_timeout)
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.ch._inbound.discard(self)
        if self.unacked:
            # Their answers were never sent: the SMG delivers them again.
            log.info("%r closed with %d requests not yet committed", self, self.unacked)

    def answer_bad_pdu(self, err: SgipError) -> bytes | None:
        seq = err.sequence_number
        if not isinstance(seq, SequenceNumber):
            return None
        # Refused with a result the SMG understands, so it does not wait for an answer.
        if err.command_id == CommandId.BIND:
            # A Bind with a login type the SP does not accept (1, 3-11).
            log.warning("%r: refused a Bind that is not Login Type 2", self)
            self._close_soon()
            return encode(BindResp(seq, Result.BAD_LOGIN_TYPE))
        answer = {CommandId.DELIVER: DeliverResp, CommandId.REPORT: ReportResp,
                  CommandId.USERRPT: UserRptResp}.get(err.command_id)
        if answer is None:
            return None
        result = Result.BAD_PARAMETER if self.bound else Result.BAD_COMMAND_ID
        return encode(answer(seq, result))

    def _close_soon(self) -> None:
        if self.transport is not None:
            asyncio.get_running_loop().call_soon(self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- requests --------------------------------------------------------
    def _on_bind(self, ev: Bind, out: list[bytes]) -> None:
        ch = self.ch
        if ev.login_name != ch._listen_login or ev.login_password != ch._listen_password:
            log.error("%r: refused the SMG's Bind: login %r or its password is not the one configured",
                      self, ev.login_name)
            self.close_with(out, self.conn.send(BindResp(ev.sequence_number, Result.BAD_LOGIN)))
            return
        out.append(self.conn.send(BindResp(ev.sequence_number, Result.OK)))
        self.bound = True
        log.info("%r bound", self)

    def _on_deliver(self, ev: Deliver, out: list[bytes]) -> None:
        resp = self.conn.send(DeliverResp(ev.sequence_number, Result.OK))
        concat, content = udh_concat(ev.message_content) if ev.tp_udhi else (None, ev.message_content)
        if self.ch.take_mo(national(ev.user_number), ev.sp_number, content, ev.message_coding,
                           concat, self._held(resp)):
            self.unacked += 1
        else:
            out.append(resp)    # a part held until its long MO is whole is answered now

    def _on_report(self, ev: SgipReport, out: list[bytes]) -> None:
        resp = self.conn.send(ReportResp(ev.sequence_number, Result.OK))
        if ev.report_type != ReportType.SUBMIT or ev.state == ReportState.WAITING:
            # Not about one of our submits, or not final yet: nothing for the core.
            out.append(resp)
            return
        ch = self.ch
        delivered = ev.state == ReportState.DELIVERED
        status = "DELIVRD" if delivered else f"SGIP:{ev.error_code}"
        # The SMG hears "got it" only once the core has committed the report.
        ch.events.report(Report(ch.config.id, carrier_id(ev.submit_sequence_number), status, delivered,
                                national(ev.user_number), None, ack=self._held(resp)))
        self.unacked += 1

    def _on_userrpt(self, ev: UserRpt, out: list[bytes]) -> None:
        # A subscriber cancelled, was suspended or resumed; Hongyan keeps no
        # subscription state, so it is logged and answered.
        log.info("%r: UserRpt %s for %s: condition %d", self, ev.sp_number, ev.user_number,
                 ev.user_condition)
        out.append(self.conn.send(UserRptResp(ev.sequence_number, Result.OK)))

    def _on_unbind(self, ev: Unbind, out: list[bytes]) -> None:
        if self.unacked > 0:
            # Answers still wait for the core; Unbind_Resp goes after them.
            self._unbind = ev.sequence_number
            return
        self.terminating = True
        self.close_with(out, self.conn.send(UnbindResp(ev.sequence_number)))

    def _on_unbind_resp(self, ev: UnbindResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()

    def _held(self, resp: bytes):
        # Counted in ``unacked`` by the caller once the core has taken it.
        ack = self.ack_later(resp)
        done = False

        def held_ack() -> None:
            nonlocal done
            if done:
                return
            done = True
            ack()
            self.unacked -= 1
            if self.unacked == 0 and self._unbind is not None:
                asyncio.get_running_loop().call_soon(self._finish_unbind)
        return held_ack

    def _finish_unbind(self) -> None:
        # After the answers that ack() queued for the same loop turn.
        if self.transport is None or self._unbind is None:
            return
        self._flush_acks()
        self.terminating = True
        try:
            last = self.conn.send(UnbindResp(self._unbind))
        except SgipError:
            last = b""
        self.close_with([], last)

    def logout(self) -> bytes | None:
        if not self.bound:
            return None
        try:
            return self.conn.send(Unbind(self.ch._sequence()))
        except SgipError:
            return None


class SgipChannel(LinkChannel):
    """An SGIP 1.2 carrier connection: submit links out, one listener in."""

    link_class = _Link
    protocol = "sgip"

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        opt = config.options
        name = config.name
        try:
            self._node_id = int(opt.get("node_id", 0))
            self._listen_port = int(opt.get("listen_port", 8801))
        except (TypeError, ValueError):
            raise ValueError(f"channel {name!r}: node_id and listen_port must be whole numbers") from None
        if not 0 <= self._node_id <= 0xFFFFFFFF:
            raise ValueError(f"channel {name!r}: node_id must fit 4 octets, not {self._node_id}")
        if not 0 <= self._listen_port <= 65535:
            raise ValueError(f"channel {name!r}: listen_port must be 0-65535, not {self._listen_port}")
        self._listen_host = str(opt.get("listen_host", "0.0.0.0"))
        self._listen_login = str(opt.get("listen_login", config.username))
        self._listen_password = str(opt.get("listen_password", config.password))
        extra = str(opt.get("retry_results", "")).replace(" ", "")
        try:
            self._busy = BUSY_RESULTS | {int(x) for x in extra.split(",") if x}
        except ValueError:
            raise ValueError(f"channel {name!r}: retry_results must be numbers separated by commas") from None
        self._sequences = SequenceGenerator(self._node_id, start=random.randrange(1 << 31))
        self._submit_fields = dict(
            corp_id=str(opt.get("corp_id", "")),
            charge_number=str(opt.get("charge_number", CHARGE_SP)),
            fee_type=int(opt.get("fee_type", 1)),
            fee_value=str(opt.get("fee_value", "0")),
            given_value=str(opt.get("given_value", "0")),
            agent_flag=int(opt.get("agent_flag", 0)),
            morelateto_mt_flag=int(opt.get("morelateto_mt_flag", 2)),
            priority=int(opt.get("priority", 0)),
        )
        self._server: asyncio.AbstractServer | None = None
        self._inbound: set[_Inbound] = set()
        super().__init__(config, events)

    def _sequence(self) -> SequenceNumber:
        return next(self._sequences)

    @property
    def listen_port(self) -> int:
        """The port the SMG must connect to (the bound one, if ``listen_port`` is 0)."""
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._listen_port

    @property
    def listening(self) -> bool:
        return self._server is not None

    # -- listener ----------------------------------------------------------
    async def on_start(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen(), name=f"sgip {self.config.name} listener"))

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff_initial
        while self._server is None:
            try:
                self._server = await loop.create_server(lambda: _Inbound(self), self._listen_host,
                                                        self._listen_port)
            except OSError as e:
                # Submits still go out; reports and MO wait at the SMG until we listen.
                log.error("sgip %s: cannot listen on %s:%d for the SMG: %s; retrying",
                          self.config.name, self._listen_host, self._listen_port, e)
                await asyncio.sleep(delay * self._rng.uniform(0.75, 1.25))
                delay = min(self._backoff_max, delay * 2)
            else:
                log.info("sgip %s: listening for the SMG on %s:%d", self.config.name,
                         self._listen_host, self.listen_port)

    async def on_stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._inbound):
            pdu = session.logout()
            if pdu and session.transport is not None:
                session.terminating = True
                session.transport.write(pdu)
                session._close_soon()
            else:
                session.abort()
        if server is not None:
            await server.wait_closed()

    # -- submits -----------------------------------------------------------
    def encode(self, link: _Link, msg: Outbound) -> list[tuple[SequenceNumber, bytes]]:
        cfg = self.config
        p = plan(msg.text)
        chunks = p.chunks
        if not chunks:
            raise ValueError("empty text")
        total = len(chunks)
        conn = link.conn
        common = dict(sp_number=msg.source or cfg.access_code, user_numbers=(international(msg.phone),),
                      service_type=cfg.service_id, report_flag=1 if msg.need_report else 2,
                      message_coding=8 if p.encoding == "ucs2" else 0, **self._submit_fields)
        ref = self.next_ref() if total > 1 else 0
        parts = []
        for i, chunk in enumerate(chunks):
            content = encode_chunk(chunk, p.encoding)
            if total > 1:
                content = concat_udh(ref, total, i + 1) + content
            seq = self._sequence()
            parts.append((seq, conn.send(Submit(seq, message_content=content, tp_udhi=1 if total > 1 else 0,
                                                **common))))
        return parts
