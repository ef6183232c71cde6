"""The sans-IO wire protocol: bytes in, events out, no sockets."""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

from camstream.errors import LocalProtocolError, RemoteProtocolError
from camstream.frame import Codec, Frame
from camstream.wire.auth import compute_digest, new_nonce, verify_digest
from camstream.wire.protocol import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_REASON_BYTES,
    PROTOCOL_VERSION,
    Auth,
    Challenge,
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
    State,
    StreamInfo,
    looks_like_camstream,
)

TOKEN = "s3cret-tøken"
INFO = StreamInfo(640, 480, Codec.JPEG, 29.97, "cam-1")


def make_frame(seq: int, size: int = 100, *, placeholder: bool = False) -> Frame:
    data = bytes((seq + i) % 256 for i in range(size))
    return Frame(
        seq, 1_700_000_000_000_000_000 + seq % 1000, 640, 480, Codec.JPEG, data, placeholder
    )


def _event_id(event: object) -> str:
    return type(event).__name__


def header(
    msg_type: int, length: int, *, magic: bytes = MAGIC, version: int = PROTOCOL_VERSION
) -> bytes:
    return HEADER.pack(magic, version, msg_type, length)


def streaming_pair(*, token: str | None = None) -> tuple[Connection, Connection]:
    """Run a full handshake between a client and a server; return both, streaming."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    assert server.receive_data(client.send(Hello(3, "viewer"))) == [Hello(3, "viewer")]
    assert server.state is State.AWAIT_STREAM_INFO
    if token is not None:
        nonce = new_nonce()
        assert client.receive_data(server.send(Challenge(nonce))) == [Challenge(nonce)]
        assert client.state is State.AUTHENTICATING
        assert server.state is State.AUTHENTICATING
        digest = compute_digest(token, nonce)
        (auth,) = server.receive_data(client.send(Auth(digest)))
        assert isinstance(auth, Auth)
        assert verify_digest(token, nonce, auth.digest)
    assert client.receive_data(server.send(INFO)) == [INFO]
    assert client.state is State.STREAMING
    assert server.state is State.STREAMING
    return client, server


def server_stream() -> bytes:
    """Everything a server sends in a typical session, as one byte string.

    (No CHALLENGE: its answer must go out before the rest can arrive.)
    """
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    parts = [server.send(INFO)]
    for seq in range(5):
        parts.append(server.send(make_frame(seq, size=1 + seq * 50)))
        parts.append(server.send(Ping(seq)))
    parts.append(server.send(make_frame(9, size=1, placeholder=True)))
    parts.append(server.send(Goodbye(GoodbyeCode.END_OF_STREAM, "camera unplugged")))
    return b"".join(parts)


def client_for_stream() -> Connection:
    client = Connection(Role.CLIENT)
    client.send(Hello())
    return client


def feed(conn: Connection, data: bytes, sizes: list[int] | None = None) -> list[Event]:
    events: list[Event] = []
    pos = 0
    for size in sizes or [len(data)]:
        events += conn.receive_data(data[pos : pos + size])
        pos += size
    assert pos >= len(data)
    return events


# -- handshakes ---------------------------------------------------------------


def test_handshake_without_token_then_frames_and_credit() -> None:
    client, server = streaming_pair()
    frame = make_frame(1)
    assert client.receive_data(server.send(frame)) == [frame]
    assert server.receive_data(client.send(Credit(1, ack_seq=1))) == [Credit(1, 1)]


def test_handshake_with_challenge_and_auth() -> None:
    client, server = streaming_pair(token=TOKEN)
    frame = make_frame(7)
    assert client.receive_data(server.send(frame)) == [frame]


def test_wrong_token_is_detected_by_the_application_which_says_goodbye() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    nonce = new_nonce()
    client.receive_data(server.send(Challenge(nonce)))
    (auth,) = server.receive_data(client.send(Auth(compute_digest("wrong", nonce))))
    assert isinstance(auth, Auth)
    assert not verify_digest(TOKEN, nonce, auth.digest)
    goodbye = Goodbye(GoodbyeCode.AUTH_FAILED, "authentication failed: wrong token")
    assert client.receive_data(server.send(goodbye)) == [goodbye]
    assert client.state is State.CLOSED
    assert server.state is State.CLOSED


def test_server_may_refuse_right_after_hello() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    full = Goodbye(GoodbyeCode.SERVER_FULL, "server full")
    assert client.receive_data(server.send(full)) == [full]


def test_stream_info_may_be_resent_while_streaming() -> None:
    client, server = streaming_pair()
    new_info = StreamInfo(1280, 720, Codec.PNG, 15.0)
    assert client.receive_data(server.send(new_info)) == [new_info]


def test_heartbeats_flow_both_ways_once_hello_is_through() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    assert server.receive_data(client.send(Ping(1))) == [Ping(1)]
    assert client.receive_data(server.send(Pong(1))) == [Pong(1)]
    assert client.receive_data(server.send(Ping(2**64 - 1))) == [Ping(2**64 - 1)]


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        Ping(0),
        Ping(2**64 - 1),
        Pong(42),
        Goodbye(GoodbyeCode.NORMAL),
        Goodbye(GoodbyeCode.TIMEOUT, "no heartbeat from client"),
        StreamInfo(1, 1, Codec.PNG, 0.0),
        StreamInfo(65535, 65535, Codec.JPEG, 1000.5, "ü" * 100),
        make_frame(0, 1),
        make_frame(2**64 - 1, 5000),
        make_frame(3, placeholder=True),
    ],
    ids=_event_id,
)
def test_server_to_client_messages_round_trip(event: Event) -> None:
    client, server = streaming_pair()
    assert client.receive_data(server.send(event)) == [event]


@pytest.mark.parametrize(
    "event",
    [
        Credit(1),
        Credit(2**32 - 1, 2**64 - 1),
        Ping(5),
        Pong(6),
        Goodbye(GoodbyeCode.NORMAL, "bye"),
    ],
    ids=_event_id,
)
def test_client_to_server_messages_round_trip(event: Event) -> None:
    client, server = streaming_pair()
    assert server.receive_data(client.send(event)) == [event]


@pytest.mark.parametrize("hello", [Hello(), Hello(1, ""), Hello(65535, "n" * 200)], ids=_event_id)
def test_hello_round_trips(hello: Hello) -> None:
    assert Connection(Role.SERVER).receive_data(Connection(Role.CLIENT).send(hello)) == [hello]


def test_placeholder_flag_round_trips_and_is_not_set_on_ordinary_frames() -> None:
    client, server = streaming_pair()
    events = client.receive_data(server.send(make_frame(1, placeholder=True)))
    events += client.receive_data(server.send(make_frame(2)))
    assert [e.placeholder for e in events if isinstance(e, Frame)] == [True, False]


def test_send_frame_returns_the_payload_object_uncopied() -> None:
    _, server = streaming_pair()
    frame = make_frame(1, 1000)
    head, payload = server.send_frame(frame)
    assert payload is frame.data
    assert len(head) == HEADER_SIZE + 22
    assert head[:4] == MAGIC + bytes([PROTOCOL_VERSION, MessageType.FRAME])
    assert int.from_bytes(head[4:8], "big") == 22 + 1000


def test_header_is_big_endian() -> None:
    data = Connection(Role.CLIENT).send(Hello(0x0102, "", max_width=0x0304))
    assert data[:8] == b"CS\x02\x01\x00\x00\x00\x0c"  # version 2, HELLO, 12 bytes
    assert data[8:14] == b"\x01\x02\x00\x00\x03\x04"  # window, flags, max width


# -- chunking -------------------------------------------------------------------


def test_whole_one_byte_at_a_time_and_random_chunks_give_identical_events() -> None:
    data = server_stream()
    whole = feed(client_for_stream(), data)
    assert len(whole) == 13
    assert feed(client_for_stream(), data, [1] * len(data)) == whole
    rng = random.Random(1234)
    for _ in range(20):
        sizes = []
        while sum(sizes) < len(data):
            sizes.append(rng.randint(1, 300))
        assert feed(client_for_stream(), data, sizes) == whole


def test_client_stream_chunked_gives_identical_events_to_the_server() -> None:
    client = Connection(Role.CLIENT)
    data = client.send(Hello(5, "ö")) + client.send(Ping(1)) + client.send(Pong(2))
    data += client.send(Goodbye(GoodbyeCode.NORMAL, "bye"))
    whole = feed(Connection(Role.SERVER), data)
    assert whole == [Hello(5, "ö"), Ping(1), Pong(2), Goodbye(GoodbyeCode.NORMAL, "bye")]
    assert feed(Connection(Role.SERVER), data, [1] * len(data)) == whole
    assert feed(Connection(Role.SERVER), data, [3, 7, 11, 13, 17, 100]) == whole


def test_trailing_partial_bytes_stay_buffered() -> None:
    client, server = streaming_pair()
    one, two = server.send(Ping(1)), server.send(make_frame(2))
    data = one + two
    for cut in range(len(one), len(data)):
        c, _ = streaming_pair()
        assert c.receive_data(data[:cut]) == [Ping(1)]
        assert c.buffered_bytes == cut - len(one)
        assert c.receive_data(data[cut:]) == [make_frame(2)]
        assert c.buffered_bytes == 0
    assert client.buffered_bytes == 0


def test_several_messages_in_one_chunk() -> None:
    client, server = streaming_pair()
    sent: list[Event] = [make_frame(i, i + 1) for i in range(50)] + [Ping(9), Pong(8)]
    data = b"".join(server.send(e) for e in sent)
    assert client.receive_data(data) == sent
    assert client.buffered_bytes == 0


def test_many_small_messages_in_one_chunk_parse_in_linear_time() -> None:
    # Parsing 8x the messages in one chunk must take about 8x the time. A parser
    # that copies or shifts the rest of the buffer per message is O(n^2): at
    # these sizes it takes 30-50x as long. The best of several runs filters out
    # the noise of a shared machine; the bound (20x) leaves room for it.
    def best_time(count: int) -> float:
        data = streaming_pair()[1].send(Ping(1)) * count
        best = float("inf")
        for _ in range(3):
            client = streaming_pair()[0]
            start = time.perf_counter()
            events = client.receive_data(data)
            best = min(best, time.perf_counter() - start)
            assert len(events) == count
            assert client.buffered_bytes == 0
        return best

    small, large = best_time(5_000), best_time(40_000)
    assert large / small < 20, f"8x the messages took {large / small:.1f}x the time"


def test_large_frame_in_small_chunks_is_not_copied_per_chunk() -> None:
    client, server = streaming_pair()
    head, payload = server.send_frame(make_frame(1, 1 << 20))
    data = head + payload
    tracemalloc.start()
    try:
        for i in range(0, len(data) - 4096, 4096):
            assert client.receive_data(data[i : i + 4096]) == []
            _, peak = tracemalloc.get_traced_memory()
            # Only the growing buffer itself, never a second copy of it per chunk.
            assert peak < 2 * client.buffered_bytes + 65536
    finally:
        tracemalloc.stop()
    (frame,) = client.receive_data(data[client.buffered_bytes :])
    assert isinstance(frame, Frame)
    assert frame.data == payload


# -- malformed input ------------------------------------------------------------


def test_http_request_is_rejected_with_a_message_that_mentions_http() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(RemoteProtocolError, match="HTTP"):
        server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert server.state is State.ERROR


def test_garbage_is_rejected_on_its_first_byte() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(RemoteProtocolError, match="HTTP"):
        server.receive_data(b"G")
    with pytest.raises(RemoteProtocolError, match="bad magic"):
        Connection(Role.SERVER).receive_data(b"C\x00")
    with pytest.raises(RemoteProtocolError, match="TLS"):
        Connection(Role.SERVER).receive_data(b"\x16\x03\x01")


def test_http_response_is_rejected_by_a_client() -> None:
    client = client_for_stream()
    with pytest.raises(RemoteProtocolError, match="HTTP"):
        client.receive_data(b"HTTP/1.1 400 Bad Request\r\n")


def test_wrong_version_names_both_versions() -> None:
    server = Connection(Role.SERVER)
    # A v1 client (camstream 0.1) meets a v2 server: both versions are named.
    with pytest.raises(RemoteProtocolError, match=r"version 1.*version 2.*Upgrade"):
        server.receive_data(b"CS\x01")  # rejected before the rest of the header


def test_unknown_message_type() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown message type 200"):
        Connection(Role.SERVER).receive_data(MAGIC + bytes([PROTOCOL_VERSION, 0xC8]))


def test_oversized_frame_is_rejected_from_the_header_alone_without_allocating() -> None:
    client, _ = streaming_pair()
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError, match=r"4294967295 bytes.*refusing"):
            client.receive_data(header(MessageType.FRAME, 0xFFFFFFFF))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    assert client.buffered_bytes == 0


def test_frame_limit_follows_max_payload_bytes() -> None:
    client, server = Connection(Role.CLIENT, max_payload_bytes=1000), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    client.receive_data(server.send(INFO))
    assert client.receive_data(server.send(make_frame(1, 1000))) == [make_frame(1, 1000)]
    with pytest.raises(RemoteProtocolError, match=r"maximum|refusing"):
        client.receive_data(server.send_frame(make_frame(2, 1001))[0])


@pytest.mark.parametrize(
    ("msg_type", "length"),
    [
        (MessageType.HELLO, 12 + 64 + 200 + 1),  # fixed part + longest names + 1
        (MessageType.HELLO, 11),
        (MessageType.PING, 9),
        (MessageType.PING, 7),
        (MessageType.GOODBYE, 1003),
        (MessageType.GOODBYE, 1),
    ],
)
def test_control_messages_with_bad_declared_lengths_are_rejected_on_header(
    msg_type: MessageType, length: int
) -> None:
    server = Connection(Role.SERVER)
    if msg_type is not MessageType.HELLO:
        server.receive_data(Connection(Role.CLIENT).send(Hello()))
    with pytest.raises(RemoteProtocolError, match="declares"):
        server.receive_data(header(msg_type, length))


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00" + bytes(10),  # credit window 0
        b"\x00\x01" + bytes(10) + b"\xff\xfe",  # client name is not UTF-8
        b"\x00\x01" + bytes(9) + b"\x02\xff\xfe",  # stream name is not UTF-8
        b"\x00\x01" + bytes(9) + b"\x05ab",  # stream name runs past the end
        b"\x00\x01\x00\x00\x00\x00\x65" + bytes(5),  # quality 101
        b"\x00\x01" + bytes(9) + b"\x41" + b"a" * 65,  # stream name over 64 bytes
    ],
)
def test_malformed_hello_bodies(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed HELLO"):
        Connection(Role.SERVER).receive_data(header(MessageType.HELLO, len(body)) + body)


def test_malformed_frame_codec_and_goodbye_code() -> None:
    client, server = streaming_pair()
    head, payload = server.send_frame(make_frame(1, 3))
    bad = bytearray(head + payload)
    bad[HEADER_SIZE + 20] = 99  # codec byte
    with pytest.raises(RemoteProtocolError, match="malformed FRAME"):
        client.receive_data(bytes(bad))
    client, _ = streaming_pair()
    with pytest.raises(RemoteProtocolError, match="malformed GOODBYE"):
        client.receive_data(header(MessageType.GOODBYE, 2) + b"\x01\x00")


def test_truncated_stream_is_detected_at_eof() -> None:
    client, server = streaming_pair()
    data = server.send(make_frame(1))
    assert client.receive_data(data[:-1]) == []
    assert client.buffered_bytes == len(data) - 1
    with pytest.raises(RemoteProtocolError, match="stream ended in the middle of a message"):
        client.receive_eof()
    assert client.state is State.ERROR


def test_eof_between_messages_is_clean() -> None:
    client, server = streaming_pair()
    client.receive_data(server.send(make_frame(1)))
    client.receive_eof()
    assert client.state is State.STREAMING


# -- order of messages ----------------------------------------------------------


def test_frame_before_stream_info_is_rejected() -> None:
    _, streaming_server = streaming_pair()
    early = client_for_stream()
    with pytest.raises(RemoteProtocolError, match=r"unexpected FRAME.*after STREAM_INFO"):
        early.receive_data(streaming_server.send(make_frame(1)))


def test_frame_during_authentication_is_rejected() -> None:
    _, streaming_server = streaming_pair()
    client = client_for_stream()
    client.receive_data(header(MessageType.CHALLENGE, 32) + bytes(32))
    client.send(Auth(bytes(32)))
    with pytest.raises(RemoteProtocolError, match="unexpected FRAME"):
        client.receive_data(streaming_server.send(make_frame(1)))


def test_stream_info_before_auth_is_rejected_by_the_client() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    client.receive_data(server.send(Challenge(bytes(32))))
    with pytest.raises(RemoteProtocolError, match="unexpected STREAM_INFO"):
        client.receive_data(streaming_pair()[1].send(INFO))


def test_second_challenge_is_rejected() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello()))
    challenge = server.send(Challenge(bytes(32)))
    client.receive_data(challenge)
    server.receive_data(client.send(Auth(bytes(32))))
    with pytest.raises(LocalProtocolError, match="CHALLENGE"):
        server.send(Challenge(bytes(32)))
    with pytest.raises(RemoteProtocolError, match="unexpected CHALLENGE"):
        client.receive_data(challenge)


def test_auth_without_challenge_is_rejected() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(Connection(Role.CLIENT).send(Hello()))
    with pytest.raises(RemoteProtocolError, match=r"unexpected AUTH.*CHALLENGE"):
        server.receive_data(header(MessageType.AUTH, 32) + bytes(32))


def test_client_sending_a_frame_is_rejected() -> None:
    _, server = streaming_pair()
    frame_bytes = streaming_pair()[1].send(make_frame(1))  # a client cannot produce one
    with pytest.raises(RemoteProtocolError, match=r"unexpected FRAME.*only the server"):
        server.receive_data(frame_bytes)


def test_credit_may_be_pipelined_after_hello_however_tcp_cuts_it() -> None:
    # docs/protocol.md §3: CREDIT is allowed any time after HELLO, so a HELLO and
    # a CREDIT in one chunk mean the same as in two, with or without a CHALLENGE.
    client = Connection(Role.CLIENT)
    data = client.send(Hello(1)) + client.send(Credit(3, 0))
    assert Connection(Role.SERVER).receive_data(data) == [Hello(1), Credit(3, 0)]
    split = Connection(Role.SERVER)
    hello_end = HEADER_SIZE + 12  # HELLO v2 with empty names
    assert split.receive_data(data[:hello_end]) == [Hello(1)]
    split.send(Challenge(bytes(32)))
    assert split.receive_data(data[hello_end:]) == [Credit(3, 0)]


def test_empty_frame_payloads_are_refused_both_ways() -> None:
    # docs/protocol.md §2 FRAME: the payload is at least 1 byte.
    client, server = streaming_pair()
    with pytest.raises(LocalProtocolError, match="empty payload"):
        server.send_frame(Frame(1, 0, 1, 1, Codec.JPEG, b""))
    header_only = server.send_frame(make_frame(1, 1))[0][:-22]
    empty = header_only[:4] + (22).to_bytes(4, "big")
    with pytest.raises(RemoteProtocolError, match=r"declares 22 bytes of body, outside 23\.\."):
        client.receive_data(empty + bytes(22))


def test_anything_but_hello_first_is_rejected_by_the_server() -> None:
    for msg in (Ping(1), Credit(1)):
        with pytest.raises(RemoteProtocolError, match="unexpected"):
            Connection(Role.SERVER).receive_data(streaming_pair()[0].send(msg))


def test_second_hello_is_rejected() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    hello = client.send(Hello())
    server.receive_data(hello)
    with pytest.raises(RemoteProtocolError, match="unexpected HELLO"):
        server.receive_data(hello)


def test_messages_after_a_received_goodbye_are_rejected() -> None:
    client, server = streaming_pair()
    bye = server.send(Goodbye(GoodbyeCode.SHUTTING_DOWN, "restart"))
    with pytest.raises(RemoteProtocolError, match="after goodbye"):
        client.receive_data(bye + streaming_pair()[1].send(Ping(1)))


def test_messages_in_flight_after_our_goodbye_are_still_accepted() -> None:
    client, server = streaming_pair()
    in_flight = server.send(make_frame(1))
    client.send(Goodbye(GoodbyeCode.NORMAL))
    assert client.state is State.CLOSED
    assert client.receive_data(in_flight) == [make_frame(1)]
    reply = Goodbye(GoodbyeCode.NORMAL)
    assert client.receive_data(server.send(reply)) == [reply]


def test_after_an_error_further_receive_data_raises() -> None:
    client, server = streaming_pair()
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"XX")
    with pytest.raises(RemoteProtocolError, match="already failed"):
        client.receive_data(server.send(Ping(1)))
    with pytest.raises(RemoteProtocolError, match="already failed"):
        client.receive_data(b"")
    assert client.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        client.send(Credit(1))
    assert client.send(Goodbye(GoodbyeCode.PROTOCOL_ERROR, "bad bytes")).startswith(MAGIC)
    assert client.state is State.ERROR  # a goodbye does not make it usable again
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"")


# -- sending out of turn --------------------------------------------------------


def test_server_cannot_send_frames_or_info_before_the_handshake() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(LocalProtocolError):
        server.send_frame(make_frame(1))
    with pytest.raises(LocalProtocolError):
        server.send(INFO)
    with pytest.raises(LocalProtocolError):
        server.send(Ping(1))
    server.receive_data(Connection(Role.CLIENT).send(Hello()))
    with pytest.raises(LocalProtocolError, match="cannot send FRAME while await_stream_info"):
        server.send(make_frame(1))


def test_server_cannot_send_frames_or_info_before_auth() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(Connection(Role.CLIENT).send(Hello()))
    server.send(Challenge(bytes(32)))
    with pytest.raises(LocalProtocolError, match="STREAM_INFO while authenticating"):
        server.send(INFO)
    with pytest.raises(LocalProtocolError, match="FRAME while authenticating"):
        server.send_frame(make_frame(1))
    server.receive_data(header(MessageType.AUTH, 32) + bytes(32))
    server.send(INFO)
    server.send_frame(make_frame(1))


def test_client_out_of_turn_sends() -> None:
    client = Connection(Role.CLIENT)
    for event in (Credit(1), Ping(1), Auth(bytes(32))):
        with pytest.raises(LocalProtocolError):
            client.send(event)
    client.send(Hello())
    with pytest.raises(LocalProtocolError, match="HELLO"):
        client.send(Hello())
    client.send(Credit(1))  # allowed from HELLO on (§3)
    with pytest.raises(LocalProtocolError, match="FRAME"):
        client.send(make_frame(1))


def test_client_answers_a_challenge_once() -> None:
    client = client_for_stream()
    client.receive_data(header(MessageType.CHALLENGE, 32) + bytes(32))
    client.send(Auth(bytes(32)))
    with pytest.raises(LocalProtocolError, match="AUTH"):
        client.send(Auth(bytes(32)))


def test_nothing_but_goodbye_after_goodbye_and_goodbye_twice_is_a_no_op() -> None:
    client, server = streaming_pair()
    assert server.send(Goodbye(GoodbyeCode.SHUTTING_DOWN))
    assert server.send(Goodbye(GoodbyeCode.SHUTTING_DOWN)) == b""
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send_frame(make_frame(1))
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send(Ping(1))
    del client


@pytest.mark.parametrize(
    "event",
    [
        Hello(0),
        Hello(65536),
        Hello(2, "x" * 201),
        Challenge(b"short"),
        Auth(bytes(31)),
        Credit(-1),
        Credit(2**32),
        Ping(2**64),
        Goodbye(99),  # type: ignore[arg-type]
        Goodbye(GoodbyeCode.NORMAL, "\ud800"),
    ],
    ids=_event_id,
)
def test_unencodable_events_raise_local_protocol_error(event: Event) -> None:
    client, server = streaming_pair()
    fresh = Connection(Role.CLIENT)
    conn = fresh if isinstance(event, Hello) else server if isinstance(event, Challenge) else client
    with pytest.raises(LocalProtocolError):
        conn.send(event)


def test_unencodable_stream_info_and_frames_raise_local_protocol_error() -> None:
    _, server = streaming_pair()
    for info in (StreamInfo(65536, 1, Codec.JPEG, 30), StreamInfo(1, 1, Codec.JPEG, float("nan"))):
        with pytest.raises(LocalProtocolError):
            server.send(info)
    with pytest.raises(LocalProtocolError):
        server.send_frame(Frame(-1, 0, 1, 1, Codec.JPEG, b""))
    small = Connection(Role.SERVER, max_payload_bytes=10)
    small.receive_data(Connection(Role.CLIENT).send(Hello()))
    small.send(INFO)
    with pytest.raises(LocalProtocolError, match="exceeds"):
        small.send_frame(make_frame(1, 11))


def test_max_payload_bytes_is_validated() -> None:
    for bad in (0, -1, 2**32):
        with pytest.raises(ValueError, match="max_payload_bytes"):
            Connection(Role.CLIENT, max_payload_bytes=bad)
    assert Connection(Role.CLIENT).max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES


# -- goodbye reasons and sniffing ----------------------------------------------


def test_goodbye_reason_is_trimmed_on_a_utf8_boundary() -> None:
    client, server = streaming_pair()
    reason = "a" + "€" * 1000  # 1 + 3000 bytes: the cut falls inside a character
    (event,) = client.receive_data(server.send(Goodbye(GoodbyeCode.NORMAL, reason)))
    assert isinstance(event, Goodbye)
    raw = event.reason.encode()
    assert MAX_REASON_BYTES - 3 < len(raw) <= MAX_REASON_BYTES
    assert reason.startswith(event.reason)
    assert event.reason == "a" + "€" * 333


def test_looks_like_camstream() -> None:
    assert looks_like_camstream(b"CS\x02\x01")
    assert looks_like_camstream(b"C")
    assert looks_like_camstream(b"")
    for http in (b"GET / HTTP/1.1", b"POST", b"CONNECT x:1 HTTP/1.1", b"OPTIONS", b"\x16\x03"):
        assert not looks_like_camstream(http)


def test_events_before_a_goodbye_in_the_same_chunk_can_still_be_answered() -> None:
    client, server = streaming_pair()
    batch = server.send(make_frame(1)) + server.send(Ping(5))
    batch += server.send(Goodbye(GoodbyeCode.END_OF_STREAM, "done"))
    events = client.receive_data(batch)
    assert [type(e) for e in events] == [Frame, Ping, Goodbye]
    assert client.state is State.CLOSED
    replies = client.send(Credit(1, ack_seq=1)) + client.send(Pong(5))
    # The server, having said goodbye, accepts what was in flight.
    assert server.receive_data(replies) == [Credit(1, 1), Pong(5)]
    assert server.receive_data(client.send(Goodbye(GoodbyeCode.NORMAL))) == [
        Goodbye(GoodbyeCode.NORMAL)
    ]


# -- protocol v2: the HELLO names a camera and carries the viewer's limits ---------------


@pytest.mark.parametrize(
    "hello",
    [
        Hello(),
        Hello(16, "viewer", stream="front", max_width=640, quality=60, max_fps=12.5),
        Hello(1, "", stream="a" * 64, adaptive=False),
        Hello(65535, "ü" * 100, stream="door-2_b", max_width=65535, quality=100),
    ],
    ids=["defaults", "limits", "fixed", "extremes"],
)
def test_v2_hello_round_trips(hello: Hello) -> None:
    server = Connection(Role.SERVER)
    assert server.receive_data(Connection(Role.CLIENT).send(hello)) == [hello]


def test_a_stream_name_too_long_to_send_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(Role.CLIENT).send(Hello(stream="x" * 65))
