"""The shared values: Frame and the one "sequence only moves forward" rule."""

from __future__ import annotations

from camstream.frame import Codec, Frame, SeqOrder


def test_seq_order_accepts_only_newer_numbers() -> None:
    order = SeqOrder()
    assert order.advance(0)
    assert order.advance(5)
    assert not order.advance(5)  # a duplicate
    assert not order.advance(3)  # a late result from a parallel encoder
    assert order.last_seq == 5
    assert order.is_newer(6) and not order.is_newer(5)
    assert order.last_seq == 5  # asking does not record


def test_frame_age_uses_the_given_clock() -> None:
    frame = Frame(1, 1_000_000_000, 4, 2, Codec.JPEG, b"x")
    assert frame.age_s(now_ns=1_250_000_000) == 0.25
