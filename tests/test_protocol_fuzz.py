"""Property tests: whatever bytes arrive, a Connection yields events or a clean error.

Random bytes and valid streams that were mutated (bit flips, truncation,
insertion, deletion, splicing) are fed in random chunks to both roles. The only
exception allowed is RemoteProtocolError, and the receive buffer never holds
more than one header plus the largest body the connection accepts.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from camstream.errors import RemoteProtocolError
from camstream.frame import Codec, Frame
from camstream.wire.messages import BODY_BOUNDS
from camstream.wire.protocol import (
    HEADER_SIZE,
    MAGIC,
    MAX_REASON_BYTES,
    PROTOCOL_VERSION,
    Connection,
    Credit,
    Event,
    Goodbye,
    GoodbyeCode,
    Hello,
    MessageType,
    Ping,
    Pong,
    Role,
    StreamInfo,
)

# Small on purpose: the random inputs below are much larger than one message may
# be, so a receiver that buffered a body before checking its declared length
# would exceed MAX_BUFFERED and fail ``feed_checked``.
MAX_PAYLOAD = 64
# The largest message the receivers accept: a header, FRAME's 22-byte prefix and
# the payload limit, or a GOODBYE with the longest reason.
MAX_BUFFERED = HEADER_SIZE + max(22 + MAX_PAYLOAD, 2 + MAX_REASON_BYTES)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

u8, u16, u32, u64 = (st.integers(0, 2**n - 1) for n in (8, 16, 32, 64))
text = st.text(max_size=30)
frames = st.builds(
    Frame,
    seq=u64,
    captured_at_ns=u64,
    width=u16,
    height=u16,
    codec=st.sampled_from(Codec),
    data=st.binary(min_size=1, max_size=MAX_PAYLOAD),
    placeholder=st.booleans(),
)
infos = st.builds(
    StreamInfo, u16, u16, st.sampled_from(Codec), st.integers(0, 120_000).map(lambda m: m / 1000)
)
goodbyes = st.builds(Goodbye, st.sampled_from(GoodbyeCode), st.text(max_size=MAX_REASON_BYTES))
heartbeats = st.one_of(st.builds(Ping, u64), st.builds(Pong, u64))
server_events = st.lists(st.one_of(frames, heartbeats, infos), max_size=8)
client_events = st.lists(st.one_of(st.builds(Credit, u32, u64), heartbeats), max_size=8)


def new_connection(role: Role, *, streaming: bool) -> Connection:
    """A receiver: a client that sent HELLO, or a fresh server; optionally streaming."""
    conn = Connection(role, max_payload_bytes=MAX_PAYLOAD)
    if role is Role.CLIENT:
        conn.send(Hello())
        if streaming:
            conn.receive_data(peer_after_hello(Role.SERVER).send(INFO))
    elif streaming:
        conn.receive_data(Connection(Role.CLIENT).send(Hello()))
        conn.send(INFO)
    return conn


def peer_after_hello(role: Role, *, streaming: bool = False) -> Connection:
    """A sender of the given role, ready to produce a valid stream (no size limit)."""
    conn = Connection(role)
    if role is Role.CLIENT:
        conn.send(Hello())
        if streaming:
            conn.receive_data(peer_after_hello(Role.SERVER).send(INFO))
    else:
        conn.receive_data(Connection(Role.CLIENT).send(Hello()))
    return conn


INFO = StreamInfo(640, 480, Codec.JPEG, 30.0)


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[Role, bool, bytes]:
    """(receiver role, receiver streaming?, bytes a well-behaved peer could send it)."""
    role, streaming = draw(
        st.sampled_from([(Role.CLIENT, False), (Role.SERVER, False), (Role.SERVER, True)])
    )
    if role is Role.CLIENT:  # the client sent HELLO; the server admits it and streams
        sender = peer_after_hello(Role.SERVER)
        events: list[Event] = [INFO, *draw(server_events)]
    elif streaming:  # the server already sent STREAM_INFO; the client grants credit
        sender = peer_after_hello(Role.CLIENT, streaming=True)
        events = draw(client_events)
    else:  # a fresh server: HELLO, then heartbeats while it decides
        sender = Connection(Role.CLIENT)
        events = [Hello(draw(st.integers(1, 0xFFFF)), draw(text)), *draw(st.lists(heartbeats))]
    events += draw(st.lists(goodbyes, max_size=1))
    return role, streaming, b"".join(sender.send(event) for event in events)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]))
        pos = draw(st.integers(0, len(out)))
        if op == "flip" and out:
            pos = min(pos, len(out) - 1)
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 16))]
        elif op == "splice":  # a piece of the stream, repeated elsewhere
            start = draw(st.integers(0, len(data)))
            out[pos:pos] = data[start : start + draw(st.integers(1, 64))]
    return bytes(out)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        chunks.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        chunks.append(data[pos:])
    return chunks


chunk_sizes = st.lists(st.integers(1, 64), min_size=1, max_size=40)


def feed_checked(conn: Connection, chunks: list[bytes]) -> list[Event]:
    """Feed chunks; return events, or stop at the first (clean) protocol error."""
    events: list[Event] = []
    for chunk in chunks:
        try:
            events += conn.receive_data(chunk)
        except RemoteProtocolError:
            event(f"protocol error after {len(events)} events")
            assert conn.buffered_bytes == 0
            with pytest.raises(RemoteProtocolError):
                conn.receive_data(b"CS")
            return events
        assert conn.buffered_bytes <= MAX_BUFFERED
    event(f"clean, {min(len(events), 3)}+ events")
    with contextlib.suppress(RemoteProtocolError):
        conn.receive_eof()
    return events


@FUZZ
@given(
    role=st.sampled_from(Role),
    streaming=st.booleans(),
    data=st.binary(max_size=600),
    sizes=chunk_sizes,
)
def test_random_bytes_give_events_or_a_protocol_error(
    role: Role, streaming: bool, data: bytes, sizes: list[int]
) -> None:
    feed_checked(new_connection(role, streaming=streaming), chunked(data, sizes))


@FUZZ
@given(
    role=st.sampled_from(Role),
    streaming=st.booleans(),
    # Longer than the largest message (MAX_BUFFERED), so that buffering a body
    # before checking its declared length fails the bound in feed_checked.
    data=st.binary(max_size=3 * MAX_BUFFERED),
    sizes=chunk_sizes,
)
def test_random_bytes_after_a_valid_header_prefix(
    role: Role, streaming: bool, data: bytes, sizes: list[int]
) -> None:
    # Start with the magic and version so the fuzzer gets past the first check.
    feed_checked(
        new_connection(role, streaming=streaming),
        chunked(MAGIC + bytes([PROTOCOL_VERSION]) + data, sizes),
    )


@FUZZ
@given(stream=valid_streams(), sizes=chunk_sizes)
def test_valid_streams_in_any_chunking_give_the_same_events(
    stream: tuple[Role, bool, bytes], sizes: list[int]
) -> None:
    role, streaming, data = stream
    whole = new_connection(role, streaming=streaming).receive_data(data)
    conn = new_connection(role, streaming=streaming)
    assert feed_checked(conn, chunked(data, sizes)) == whole
    assert conn.buffered_bytes == 0


@FUZZ
@given(st.data())
def test_mutated_streams_give_events_or_a_protocol_error(data: st.DataObject) -> None:
    role, streaming, stream = data.draw(valid_streams())
    bad = data.draw(mutated(stream))
    sizes = data.draw(chunk_sizes)
    feed_checked(new_connection(role, streaming=streaming), chunked(bad, sizes))


@FUZZ
@given(
    receiver=st.sampled_from(
        [(Role.CLIENT, t) for t in (4, 5, 7, 8, 9)] + [(Role.SERVER, t) for t in (6, 7, 8, 9)]
    ),
    excess=st.integers(1, 2 * MAX_BUFFERED),
    sizes=chunk_sizes,
)
def test_an_oversized_declared_length_is_refused_before_its_body_is_buffered(
    receiver: tuple[Role, int], excess: int, sizes: list[int]
) -> None:
    role, msg_type = receiver[0], MessageType(receiver[1])
    conn = new_connection(role, streaming=True)
    _low, high = BODY_BOUNDS[msg_type]
    high += MAX_PAYLOAD if msg_type is MessageType.FRAME else 0
    body = bytes(high + excess)  # the whole oversized body really follows
    data = MAGIC + bytes([PROTOCOL_VERSION, msg_type]) + (high + excess).to_bytes(4, "big")
    with pytest.raises(RemoteProtocolError, match="declares"):
        for chunk in chunked(data + body, sizes):
            conn.receive_data(chunk)
            assert conn.buffered_bytes <= MAX_BUFFERED
