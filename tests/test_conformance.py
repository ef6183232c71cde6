"""Conformance, §1-§4 of docs/protocol.md: framing, bodies, message order, credits.

A real server (127.0.0.1, ephemeral port, the fast timeouts of ``netfaults.FAST``)
is driven with raw bytes built from the spec alone (``rawwire.py``), so the spec
and the server cannot drift apart unnoticed. Every test names the section it
checks (``test_sN_…``); §5-§7 are in ``test_conformance_session.py``.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest

from camstream import Server
from netfaults import FAST, wait_until
from rawwire import (
    AUTH,
    AUTH_FAILED,
    CHALLENGE,
    CREDIT,
    CREDIT_CAP,
    FRAME,
    GOODBYE,
    HELLO,
    MAX_PAYLOAD,
    PONG,
    PROTOCOL_ERROR,
    STREAM_INFO,
    TOKEN,
    UNREAD_LIMIT,
    Message,
    RawFactory,
    admitted,
    auth_digest,
    credit,
    frames_in,
    hello,
    message,
    native_viewer,
    parse_goodbye,
    parse_info,
    ping,
    raw_peers,
)


@pytest.fixture
def raw() -> Iterator[RawFactory]:
    with raw_peers() as open_:
        yield open_


@pytest.fixture
def server(running_server: Callable[..., Server]) -> Server:
    # The credit-window rules (§3, §4) on their own: adaptive delivery, which may
    # hold frames back further until earlier ones are acked, is checked in §4b.
    return running_server("test", adaptive=False, **FAST)


# -- §1 framing -----------------------------------------------------------------------


def test_s1_example_hello_bytes_are_accepted(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(bytes.fromhex("43 53 02 01 00 00 00 0c 00 02 00 00 00 00 00 00 00 00 00 00"))
    assert peer.read()[0] == STREAM_INFO


def test_s1_declared_length_is_checked_before_the_body_arrives(
    raw: RawFactory, server: Server
) -> None:
    peer = raw(server.port)
    # The longest HELLO body is 12 + 64 + 200 = 276 bytes; 277 is refused before any body.
    peer.send(struct.pack("!2sBBI", b"CS", 2, HELLO, 277))
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "277" in reason


@pytest.mark.parametrize(
    ("length", "body"),
    [(11, b"\x00\x02" + bytes(9)), (12 + 64 + 201, b"\x00\x02" + bytes(10) + b"n" * 265)],
)
def test_s1_hello_length_outside_its_bounds(
    raw: RawFactory, server: Server, length: int, body: bytes
) -> None:
    peer = raw(server.port)
    peer.send(struct.pack("!2sBBI", b"CS", 2, HELLO, length) + body)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s1_frame_payload_limit_is_fixed_and_not_carried_by_any_message(
    raw: RawFactory, server: Server
) -> None:
    # §1: the limit is fixed at 32 MiB; no body field carries it.
    peer, messages = admitted(raw, server)
    assert len(messages[0][1]) == 9 + len(b"camstream")  # STREAM_INFO: no size field either
    _, body = peer.until(FRAME)[-1]
    assert 23 <= len(body) <= 22 + MAX_PAYLOAD


# -- §2 bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(hello(0), id="credit-window-0"),
        pytest.param(hello(2, b"\xff\xfe"), id="invalid-utf8-name"),
    ],
)
def test_s2_malformed_hello_is_a_protocol_error(
    raw: RawFactory, server: Server, bad: bytes
) -> None:
    peer = raw(server.port)
    peer.send(bad)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s2_reserved_hello_flags_are_ignored(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(hello(2, b"x", flags=0xFFFF))
    assert peer.read()[0] == STREAM_INFO


def test_s2_frame_fields(raw: RawFactory, server: Server) -> None:
    peer, messages = admitted(raw, server)
    messages += peer.until(FRAME)
    infos = [parse_info(body) for kind, body in messages if kind == STREAM_INFO]
    seq, captured_at_ns, width, height, codec, flags, payload = frames_in(messages)[0]
    assert (width, height, codec) == (infos[-1][0], infos[-1][1], 1) == (160, 120, 1)
    assert infos[-1][2] == 1 and infos[-1][4] == "camstream"  # codec JPEG; server_name
    assert flags & 0xFE == 0  # reserved bits are sent as 0
    assert payload[:2] == b"\xff\xd8"  # a JPEG, never empty (§2 FRAME)
    assert abs(captured_at_ns - time.time_ns()) < 10 * 10**9  # wall clock, ns since the epoch
    assert seq >= 0


# -- §3 message order ----------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(credit(1), id="CREDIT"),
        pytest.param(ping(1), id="PING"),
        pytest.param(message(AUTH, bytes(32)), id="AUTH"),
        pytest.param(message(PONG, bytes(8)), id="PONG"),
    ],
)
def test_s3_only_hello_or_goodbye_may_come_first(
    raw: RawFactory, server: Server, first: bytes
) -> None:
    peer = raw(server.port)
    peer.send(first)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(hello(), id="second-HELLO"),
        pytest.param(message(AUTH, bytes(32)), id="AUTH-without-CHALLENGE"),
        pytest.param(message(FRAME, bytes(23)), id="FRAME-from-client"),
        pytest.param(message(STREAM_INFO, bytes(9)), id="STREAM_INFO-from-client"),
        pytest.param(message(CHALLENGE, bytes(32)), id="CHALLENGE-from-client"),
    ],
)
def test_s3_out_of_order_after_admission(raw: RawFactory, server: Server, second: bytes) -> None:
    peer, _ = admitted(raw, server)
    peer.send(second)
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "unexpected" in reason


def test_s3_hello_and_credit_may_be_pipelined_in_one_chunk(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(hello(1) + credit(2) + ping(77))  # one chunk: 3 credits in all
    got = peer.until(PONG)
    assert got[0][0] == STREAM_INFO and got[-1] == (PONG, struct.pack("!Q", 77))
    frames = frames_in(got + peer.until(FRAME) + peer.until(FRAME) + peer.until(FRAME))
    assert len(frames) >= 3


def test_s3_credit_while_authenticating_is_allowed(
    raw: RawFactory, running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello(1) + credit(1))
    kind, nonce = peer.read()
    assert kind == CHALLENGE and len(nonce) == 32
    peer.send(ping(5))  # PING is allowed while authenticating too
    assert peer.read() == (PONG, struct.pack("!Q", 5))
    peer.send(message(AUTH, auth_digest(TOKEN, nonce)))
    got = peer.until(FRAME)
    got += peer.until(FRAME)  # HELLO's 1 credit plus CREDIT's 1
    assert got[0][0] == STREAM_INFO and len(frames_in(got)) == 2


def test_s3_wrong_auth_gets_auth_failed(
    raw: RawFactory, running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())
    _, nonce = peer.read()
    peer.send(message(AUTH, auth_digest("wrong", nonce)))
    assert peer.goodbye()[0] == AUTH_FAILED


def test_s3_anything_but_auth_after_a_challenge_is_an_error(
    raw: RawFactory, running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())
    assert peer.read()[0] == CHALLENGE
    peer.send(hello())
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s3_stream_info_is_resent_when_the_size_becomes_known(
    raw: RawFactory, server: Server
) -> None:
    # An idle on-demand server has no frame yet: its admission STREAM_INFO says 0x0,
    # and the size arrives in a second STREAM_INFO before the first FRAME.
    peer, messages = admitted(raw, server)
    assert parse_info(messages[0][1])[:2] == (0, 0)
    messages += peer.until(FRAME)
    kinds = [kind for kind, _ in messages]
    assert kinds.count(STREAM_INFO) == 2
    resent = parse_info(messages[kinds.index(STREAM_INFO, 1)][1])
    first = parse_info(messages[0][1])
    assert resent[:2] == (160, 120)
    assert resent[2:] == first[2:]  # codec, fps and name repeat the admission's


def test_s3_stream_info_is_not_resent_while_the_size_stays(raw: RawFactory, server: Server) -> None:
    peer, messages = admitted(raw, server, window=4)
    for _ in range(6):
        messages += peer.until(FRAME)
        peer.send(credit(1))
    assert [kind for kind, _ in messages].count(STREAM_INFO) == 2  # 0x0, then 160x120


# -- §3 errors and truncation ---------------------------------------------------------


def test_s3_truncated_message_at_half_close_gets_protocol_error(
    raw: RawFactory, server: Server
) -> None:
    peer, _ = admitted(raw, server)
    peer.send(ping(1)[:11])  # 11 of 16 bytes, then FIN
    peer.sock.shutdown(socket.SHUT_WR)
    messages, reset = peer.all_until_closed()
    assert not reset
    code, reason = parse_goodbye(messages[-1][1])
    assert messages[-1][0] == GOODBYE and code == PROTOCOL_ERROR
    assert "middle of a message" in reason


def test_s3_nothing_is_parsed_after_a_protocol_error(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server)
    peer.send(message(CREDIT, bytes(3)) + ping(9))  # bad CREDIT length, then a valid PING
    messages, _ = peer.all_until_closed()
    assert (PONG, struct.pack("!Q", 9)) not in messages
    assert messages[-1][0] == GOODBYE and parse_goodbye(messages[-1][1])[0] == PROTOCOL_ERROR


# -- §4 credits -----------------------------------------------------------------------


def test_s4_hello_window_is_capped(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server, window=65535)
    got: list[Message] = []
    for index in range(CREDIT_CAP):
        peer.send(ping(index))  # the cap's worth of frames outlasts the heartbeat timeout
        got += peer.until(FRAME)
    sent = frames_in(got)[-1][0]
    # State, not silence: the server has newer frames but sent none of them.
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    viewer = native_viewer(server)
    assert (viewer["frames_sent"], viewer["last_seq"]) == (CREDIT_CAP, sent)
    peer.send(ping(1))
    assert not frames_in(peer.until(PONG))  # and none was in flight either


@pytest.mark.parametrize("grant", [CREDIT_CAP + 1, 2**32 - 1])
def test_s4_huge_credit_is_capped(raw: RawFactory, server: Server, grant: int) -> None:
    peer, messages = admitted(raw, server, window=1)
    messages += peer.until(FRAME)
    peer.send(credit(grant, frames_in(messages)[-1][0]))
    for index in range(CREDIT_CAP):
        peer.send(ping(index))  # the cap's worth of frames outlasts the heartbeat timeout
        messages += peer.until(FRAME)
    sent = frames_in(messages)[-1][0]
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    assert native_viewer(server)["frames_sent"] == 1 + CREDIT_CAP


def test_s4_credit_zero_is_a_no_op(raw: RawFactory, server: Server) -> None:
    peer, messages = admitted(raw, server, window=1)
    messages += peer.until(FRAME)
    peer.send(credit(0) + ping(3))
    assert not frames_in(peer.until(PONG))
    sent = frames_in(messages)[-1][0]
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    assert native_viewer(server)["frames_sent"] == 1


def test_s4_latest_frame_wins_and_seq_has_gaps(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server, window=1)
    first = frames_in(peer.until(FRAME))[0][0]
    wait_until(lambda: server.status()["latest_seq"] >= first + 4, 5, "newer frames")
    newest = server.status()["latest_seq"]
    peer.send(credit(1, first))
    second = frames_in(peer.until(FRAME))[0][0]
    assert second >= newest > first + 1  # the older ones were skipped, not queued


def test_s2_seq_does_not_restart_with_a_connection_or_capture(
    raw: RawFactory, running_server: Callable[..., Server]
) -> None:
    # §2 FRAME seq: counted per server process, never reset, so a client's first
    # frame may carry any number; not even an on-demand capture restart resets it.
    server = running_server("test", capture_linger_s=0, **FAST)
    peer, _ = admitted(raw, server)
    first = frames_in(peer.until(FRAME))[0][0]
    wait_until(lambda: server.status()["latest_seq"] >= first + 3, 5, "more frames")
    latest = server.status()["latest_seq"]
    peer.close()
    wait_until(lambda: not server.status()["capturing"], 5, "capture to stop")
    again, _ = admitted(raw, server)
    assert frames_in(again.until(FRAME))[0][0] >= latest > first


def test_s4_a_peer_that_never_reads_is_reset_after_64k_of_replies(
    running_server: Callable[..., Server],
) -> None:
    # §4: PONGs pile up behind a peer that never reads; once they exceed 64 KiB
    # beyond the socket buffers the server resets the connection, without a GOODBYE.
    server = running_server("test", **{**FAST, "heartbeat_timeout_s": 30})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(hello(1))
        burst = ping(1) * 4096  # 64 KiB of PINGs → 64 KiB of PONGs
        sent, reset = 0, False
        deadline = time.monotonic() + 30
        while not reset and time.monotonic() < deadline and sent < 64 * 1024 * 1024:
            try:
                sock.settimeout(1)
                sock.sendall(burst)
                sent += len(burst)
            except (ConnectionResetError, BrokenPipeError):
                reset = True
            except TimeoutError:  # the server stopped reading: it is closing us
                pass
        assert reset, f"still connected after {sent} bytes of unread PINGs"
        assert sent > UNREAD_LIMIT  # not cut before the limit
        wait_until(lambda: server.status()["viewer_count"] == 0, 5, "the viewer to leave")
    finally:
        sock.close()


# -- §4b adaptive delivery (protocol v2) --------------------------------------------------


@pytest.fixture
def adaptive_server(running_server: Callable[..., Server]) -> Server:
    return running_server("test", **FAST)  # adaptive is the default


def test_s4b_a_peer_that_never_acks_gets_only_the_initial_window(
    raw: RawFactory, adaptive_server: Server
) -> None:
    # §4b: within the credit, the server keeps about one round trip of frames in
    # flight; before any ack it knows no round trip, so it sends 2 and waits.
    peer, messages = admitted(raw, adaptive_server, window=64)
    messages += peer.until(FRAME)
    messages += peer.until(FRAME)
    sent = frames_in(messages)[-1][0]
    wait_until(lambda: adaptive_server.status()["latest_seq"] >= sent + 10, 5, "newer frames")
    viewer = native_viewer(adaptive_server)
    assert viewer["frames_sent"] == 2, viewer
    assert viewer["delivery"]["bytes_in_flight"] > 0


def test_s4b_a_peer_that_acks_each_frame_keeps_receiving_them(
    raw: RawFactory, adaptive_server: Server
) -> None:
    # §4b: acking (CREDIT(1, ack_seq=seq)) every frame as it lands keeps the stream going.
    peer, _ = admitted(raw, adaptive_server, window=16)
    seqs: list[int] = []
    for _ in range(20):
        ((seq, *_rest),) = frames_in(peer.until(FRAME))
        peer.send(credit(1, seq))
        seqs.append(seq)
    assert seqs == sorted(set(seqs))
    delivery = native_viewer(adaptive_server)["delivery"]
    assert delivery["tier"] == "full" and delivery["rtt_ms"] is not None
