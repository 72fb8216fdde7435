"""MLLP release 2 framing: ``<SB> message <EB><CR>``, decoded without I/O.

python-hl7's ``MLLPStreamReader.readblock`` is used on the client side, but the
server needs more than it tells: it reads up to ``<EB><CR>`` and only then
complains that the block did not start with ``<SB>``, so garbage before a frame
and a frame whose ``<EB>`` went missing (the next ``<SB>`` arrives first) look
the same and the good message after the garbage is lost; on overflow it clears
its buffer mid-frame and loses the frame boundary; and a frame that has
started but does not finish cannot be told from an idle connection. This
decoder reports each case as an event, keeps the first bytes of an oversize
frame (to answer it with a NAK that names the message), and says whether a
frame is open so the caller can apply the read timeout instead of the idle one.
"""

from __future__ import annotations

from dataclasses import dataclass

SB = 0x0B
EB = 0x1C
CR = 0x0D
#: bytes between frames that are tolerated without a warning (line ends from sloppy senders)
BLANK = b"\r\n\t "
#: how much of an oversize frame is kept to read its MSH from
HEAD = 4096


def frame(data: bytes) -> bytes:
    return b"\x0b" + data + b"\x1c\x0d"


@dataclass(frozen=True)
class Frame:
    data: bytes


@dataclass(frozen=True)
class Garbage:
    """Bytes outside any frame (not counting blank ones)."""

    size: int


@dataclass(frozen=True)
class Unterminated:
    """A frame cut short by the next ``<SB>``: its ``<EB><CR>`` never came."""

    size: int


@dataclass(frozen=True)
class Oversize:
    """A frame longer than the limit, skipped to its end; ``head`` is its start."""

    size: int
    head: bytes


@dataclass(frozen=True)
class MissingCr:
    """``<EB>`` not followed by ``<CR>``: the frame is taken, the sender is sloppy."""


Event = Frame | Garbage | Unterminated | Oversize | MissingCr


class FrameDecoder:
    """Feed it bytes as they arrive; it returns what they completed."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._in_frame = False
        self._size = 0
        self._skipping = False
        self._after_eb = False
        self._garbage = 0

    @property
    def in_frame(self) -> bool:
        """A frame has started and not ended: the read timeout applies, not the idle one."""
        return self._in_frame

    @property
    def pending(self) -> int:
        """Bytes of the open frame so far (for the log when a connection ends mid-frame)."""
        return self._size

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._after_eb:
                self._after_eb = False
                if data[pos] == CR:
                    pos += 1
                    continue
                events.append(MissingCr())
            if not self._in_frame:
                start = data.find(SB, pos)
                stop = end if start < 0 else start
                junk = data[pos:stop]
                if junk.strip(BLANK):
                    self._garbage += stop - pos
                if start < 0:
                    break
                self._flush_garbage(events)
                self._open()
                pos = start + 1
                continue
            eb = data.find(EB, pos)
            stop = end if eb < 0 else eb
            sb = data.find(SB, pos, stop)
            if sb >= 0:
                self._take(data[pos:sb])
                events.append(Unterminated(self._size))
                self._open()
                pos = sb + 1
                continue
            self._take(data[pos:stop])
            if eb < 0:
                break
            events.append(self._close())
            self._after_eb = True
            pos = eb + 1
        if self._garbage > self.max_size:
            self._flush_garbage(events)
        return events

    def flush(self) -> list[Event]:
        """At end of input: garbage not yet reported."""
        events: list[Event] = []
        self._flush_garbage(events)
        return events

    def _open(self) -> None:
        self._in_frame, self._skipping, self._size = True, False, 0
        self._buffer.clear()

    def _take(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.max_size:
            self._skipping = True
        if not self._skipping:
            self._buffer += chunk
        elif len(self._buffer) < HEAD:
            self._buffer += chunk[: HEAD - len(self._buffer)]

    def _close(self) -> Event:
        self._in_frame = False
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._skipping:
            return Oversize(self._size, data[:HEAD])
        return Frame(data)

    def _flush_garbage(self, events: list[Event]) -> None:
        if self._garbage:
            events.append(Garbage(self._garbage))
            self._garbage = 0
