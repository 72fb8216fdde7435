"""One inbound MLLP message: header, duplicate check, hand-over, and the answer.

Acknowledgement rules (HL7 v2 chapter 2):

- Original mode (MSH-15 and MSH-16 empty): ``ack=original`` answers AA once
  the journal has the message; ``ack=application`` waits for the route and
  answers with the route's reply when its final body is itself an HL7 reply
  (has MSA: an ACK or RSP built by a service), else AA, or AE/AR with ERR when
  it failed (:func:`transforms.hl7v2.ack.failure_answer`).
- Enhanced mode (MSH-15 or MSH-16 valued): the same, but ``ack=original``
  answers with the commit codes CA/CE/CR, and the answer is sent only when the
  sender's condition allows it (MSH-15 for ``ack=original``, MSH-16 for
  ``ack=application``: AL always, NE never, ER only on error, SU only on success).
  Exactly one answer per message goes back on the connection.

A message whose header is unreadable or refused is answered AR (CR) and not
journaled; one that could not be journaled is answered AE (CE) "send again".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from adapters.mllp.dedup import Answer, DedupKey, DedupStore, Recorder, Seen
from adapters.mllp.options import MllpOptions
from esb.components import Handler, Outcome
from esb.errors import Hl7Error
from esb.exchange import Exchange
from transforms.hl7v2.ack import ACCEPTED, ACK_CODES, ErrorDetail, build_ack, commit_code, failure_answer, is_reply
from transforms.hl7v2.ack import read_ack as read_reply
from transforms.hl7v2.message import Header, check_header, normalize_segments, parse_header

log = logging.getLogger("esb.adapters.mllp")

#: how long a retransmission waits for the first copy's answer before AE 206
PENDING_WAIT = 10.0
PENDING_POLL = 0.05
#: how long to wait for a finished first copy's recorded answer before judging by its journal status
RECORD_WAIT = 2.0
NOT_STORED = ErrorDetail("207", "the message could not be stored; send it again later")
STILL_RUNNING = ErrorDetail("206", "a message with this control id is still being processed; send it again later")
FIRST_FAILED = ErrorDetail("207", "the first copy of this message failed")


@dataclass
class Connection:
    """Per-connection state: who, and the previous message's route (for ``ordered``)."""

    peer: str
    headers: dict[str, str]
    previous: asyncio.Future[Outcome] | None = None


@dataclass(frozen=True)
class Reply:
    code: str
    detail: ErrorDetail | None = None
    #: a reply built by the route (ACK/RSP), sent as it is
    body: bytes | None = None


class Inbound:
    def __init__(
        self,
        options: MllpOptions,
        handler: Handler,
        route_id: str,
        dedup: DedupStore | None,
        recorder: Recorder | None,
    ) -> None:
        self.options, self.handler, self.route_id = options, handler, route_id
        self.dedup, self.recorder = dedup, recorder
        self.application = options.ack == "application"

    async def take(self, data: bytes, conn: Connection) -> bytes | None:
        """The bytes to answer a frame with (None: the sender asked for no answer)."""
        body = normalize_segments(data)
        try:
            header = parse_header(body, self.options.codec)
        except Hl7Error as exc:
            log.warning("route %s: refused a frame from %s: %s", self.route_id, conn.peer, exc)
            return self.encode(None, Reply("AR", _detail(exc)))
        problem = check_header(header, body)
        if problem is not None:
            log.warning("route %s: refused %s from %s: %s", self.route_id, header.message_type, conn.peer, problem)
            code = commit_code("AR") if header.enhanced_mode and not self.application else "AR"
            return self.answer(header, Reply(code, _detail(problem)))
        exchange = Exchange(body=body, headers={**header.exchange_headers(), **conn.headers})
        key = None
        if self.dedup is not None:
            key = DedupKey.of(self.route_id, header.sending_application, header.sending_facility, header.control_id)
            assert exchange.correlation_id is not None
            seen = await asyncio.to_thread(self.dedup.claim, key, exchange.correlation_id)
            if seen is not None:
                return self.answer(header, await self.duplicate(header, key, seen, conn))
        # Should hand_over raise, the claim stays pending: the journal (correlation id) tells later.
        reply, message_id = await self.hand_over(exchange, header, conn)
        if key is not None:
            assert self.recorder is not None and exchange.correlation_id is not None
            if message_id is None:
                await asyncio.to_thread(self._release, key, exchange)
            else:
                detail = reply.detail
                self.recorder.add(
                    Answer(
                        key,
                        exchange.correlation_id,
                        reply.code,
                        message_id,
                        detail.code if detail else None,
                        detail.text if detail else None,
                    )  # fmt: skip
                )
        return self.answer(header, reply)

    def _release(self, key: DedupKey, exchange: Exchange) -> None:
        assert self.dedup is not None and exchange.correlation_id is not None
        self.dedup.release(key, exchange.correlation_id)

    async def hand_over(self, exchange: Exchange, header: Header, conn: Connection) -> tuple[Reply, str | None]:
        """Give the message to the engine; the reply and the journal id (None: not journaled)."""
        if not self.application and self.options.ordered and conn.previous is not None:
            with contextlib.suppress(Exception):  # its failure is the route's to report, not ours
                await asyncio.shield(conn.previous)
            conn.previous = None
        outcome = await self.handler(exchange, self.application)
        if outcome.message_id is None:
            log.warning("route %s: message from %s not stored: %s", self.route_id, conn.peer,
                        type(outcome.error).__name__)  # fmt: skip
            code = "CE" if header.enhanced_mode and not self.application else "AE"
            return Reply(code, NOT_STORED), None
        if not self.application:
            conn.previous = outcome.done if self.options.ordered else None
            return Reply("CA" if header.enhanced_mode else "AA"), outcome.message_id
        return self.application_reply(outcome), outcome.message_id

    def application_reply(self, outcome: Outcome) -> Reply:
        if outcome.status == "failed":
            wanted = str(outcome.reply.get("code", ""))
            if wanted and wanted.upper() not in ACK_CODES:
                log.warning("route %s: on_error ack code '%s' is not one of %s; using the default",
                            self.route_id, wanted, "|".join(ACK_CODES))  # fmt: skip
            code, detail = failure_answer(outcome.error, outcome.reply)
            return Reply(code, detail)
        final = outcome.exchange
        if outcome.status == "processed" and final is not None and is_reply(final.body):
            try:
                code = read_reply(final.body, self.options.codec).code
            except Hl7Error:
                code = "AA"
            return Reply(code if code in ACK_CODES else "AA", body=final.body)
        return Reply("AA")

    async def duplicate(self, header: Header, key: DedupKey, seen: Seen, conn: Connection) -> Reply:
        """The first copy's answer again; wait a little for it when it is not known yet."""
        waited = 0.0
        while seen.ack_code is None:
            status = seen.journal_status
            if status is not None and not self.application:
                break  # journaled: that is all original mode promises
            if status not in (None, "received") and waited >= RECORD_WAIT:
                break  # the route finished but its answer was not recorded (that node died): judge by status
            if waited >= PENDING_WAIT:
                log.info("route %s: control id %s from %s is still being processed; answered AE 206",
                         self.route_id, header.control_id, conn.peer)  # fmt: skip
                return Reply("AE", STILL_RUNNING)
            await asyncio.sleep(PENDING_POLL)
            waited += PENDING_POLL
            assert self.dedup is not None
            again = await asyncio.to_thread(self.dedup.peek, key)
            if again is None:  # the first copy was not stored after all: the sender must send again
                return Reply("AE", NOT_STORED)
            seen = again
        log.info("route %s: control id %s from %s (%s) is a duplicate of message %s; answered again",
                 self.route_id, header.control_id, conn.peer, header.sending_application, seen.message_id)  # fmt: skip
        if seen.ack_code is not None:
            code = seen.ack_code
            failed = code not in ACCEPTED
            detail = ErrorDetail(seen.error_code or "207", seen.ack_text or "") if failed else None
            return Reply(code, detail)
        if seen.journal_status == "failed" and self.application:
            return Reply("AE", FIRST_FAILED)
        return Reply("CA" if header.enhanced_mode and not self.application else "AA")

    def answer(self, header: Header, reply: Reply) -> bytes | None:
        """The reply's bytes, unless the sender's enhanced-mode condition says not to send it."""
        if header.enhanced_mode:
            condition = (header.application_ack_type if self.application else header.accept_ack_type) or "AL"
            success = reply.code in ACCEPTED
            if condition == "NE" or (condition == "ER" and success) or (condition == "SU" and not success):
                return None
        return self.encode(header, reply)

    def encode(self, header: Header | None, reply: Reply) -> bytes:
        if reply.body is not None:
            return reply.body
        text = build_ack(header, reply.code, reply.detail)
        codec = header.codec if header is not None and header.codec else self.options.codec
        return text.encode(codec, errors="replace")

    def failed(self, data: bytes, conn: Connection, error: BaseException) -> bytes | None:
        """AE for a message we could not handle (the database down, a bug): the sender should send it again."""
        log.error("route %s: message from %s could not be taken: %s", self.route_id, conn.peer, type(error).__name__)
        try:
            header = parse_header(normalize_segments(data), self.options.codec)
        except Hl7Error:
            return self.encode(None, Reply("AE", NOT_STORED))
        code = "CE" if header.enhanced_mode and not self.application else "AE"
        return self.answer(header, Reply(code, NOT_STORED))

    def oversize(self, head: bytes, size: int, conn: Connection) -> bytes | None:
        """AR for a frame over max_size, addressed to its sender when its MSH could be read."""
        log.warning("route %s: frame of %d bytes from %s is over max_size %d; answered AR",
                    self.route_id, size, conn.peer, self.options.max_size)  # fmt: skip
        detail = ErrorDetail("207", f"the message is larger than the {self.options.max_size} bytes accepted here")
        try:
            header = parse_header(normalize_segments(head), self.options.codec)
        except Hl7Error:
            return self.encode(None, Reply("AR", detail))
        return self.answer(header, Reply("AR", detail))


def _detail(error: Hl7Error) -> ErrorDetail:
    return ErrorDetail(error.error_code, error.text, error.severity, error.location)
