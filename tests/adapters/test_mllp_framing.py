"""The MLLP frame decoder, fed byte streams cut at every awkward place."""

from __future__ import annotations

from adapters.mllp.framing import HEAD, Frame, FrameDecoder, Garbage, MissingCr, Oversize, Unterminated, frame


def feed_all(decoder: FrameDecoder, *chunks: bytes) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events + list(decoder.flush())


def test_frames_split_anywhere_come_out_whole() -> None:
    stream = frame(b"MSH|one") + frame(b"MSH|two")
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder(1024)
        assert feed_all(decoder, stream[:cut], stream[cut:]) == [Frame(b"MSH|one"), Frame(b"MSH|two")]
        assert not decoder.in_frame


def test_garbage_blank_lines_and_missing_cr() -> None:
    decoder = FrameDecoder(1024)
    events = feed_all(decoder, b"\r\nnoise", b"!" + frame(b"a") + b"\n", b"\x0bb\x1c" + frame(b"c"))
    assert events == [Garbage(8), Frame(b"a"), Frame(b"b"), MissingCr(), Frame(b"c")]


def test_a_frame_cut_short_by_the_next_start_block() -> None:
    decoder = FrameDecoder(1024)
    assert feed_all(decoder, b"\x0bMSH|lost", b"\x0bMSH|kept\x1c\r") == [Unterminated(8), Frame(b"MSH|kept")]


def test_oversize_frames_are_skipped_to_their_end_keeping_the_head() -> None:
    decoder = FrameDecoder(10)
    big = b"MSH|" + b"x" * (HEAD * 2)
    events = feed_all(decoder, b"\x0b" + big[:100], big[100:] + b"\x1c\r" + frame(b"small"))
    assert events == [Oversize(len(big), big[:HEAD]), Frame(b"small")]
    decoder = FrameDecoder(10)
    assert decoder.feed(b"\x0b" + b"y" * 5) == [] and decoder.in_frame and decoder.pending == 5


def test_endless_garbage_is_reported_once_it_exceeds_the_limit() -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(b"GET / HTTP/1.1\r\n" * 4) == []
    assert decoder.feed(b"Host: x\r\n" * 10) == [Garbage(154)]
