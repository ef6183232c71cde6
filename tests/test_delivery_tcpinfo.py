"""Linux TCP_INFO decoding, checked against a real loopback connection."""

from __future__ import annotations

import socket
import struct
import sys
import time

import pytest

from camstream.delivery import DeliveryController, parse_tcp_info
from camstream.delivery.tcpinfo import TCP_INFO_BYTES

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")


def _read_info(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)


def test_a_loopback_connection_reports_what_was_sent_and_what_waits() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname(), timeout=5) as client,
    ):
        sender, _ = server.accept()
        with sender:
            sender.sendall(b"x" * 100_000)
            received = 0
            while received < 100_000:
                received += len(client.recv(65536))
            deadline = time.monotonic() + 5
            info = parse_tcp_info(_read_info(sender))
            while info is not None and info.bytes_acked != 100_000:
                assert time.monotonic() < deadline
                time.sleep(0.01)
                info = parse_tcp_info(_read_info(sender))
            assert info is not None
            assert info.state == 1  # ESTABLISHED
            assert info.snd_mss > 0
            assert 0 < info.rtt_s < 1
            assert info.min_rtt_s is not None and 0 < info.min_rtt_s <= info.rtt_s + 1e-3
            assert info.notsent_bytes == 0
            assert info.unacked_bytes == 0
            assert info.delivery_rate_bps is not None and info.delivery_rate_bps > 0
            # A controller fed from it sees the frame delivered.
            ctrl = DeliveryController()
            ctrl.on_frame_sent(1, 100_000, 0.0)
            ctrl.on_tcp_info(info, 0.01)
            assert ctrl.bytes_in_flight == 0
            assert ctrl.delivery_rate_bps == pytest.approx(info.delivery_rate_bps)
            # A reader that stops reading: what waits shows up as not sent.
            sender.setblocking(False)
            queued = 0
            with pytest.raises(BlockingIOError):
                while queued < 64 * 1024 * 1024:
                    queued += sender.send(b"y" * 65536)
            waiting = parse_tcp_info(_read_info(sender))
            assert waiting is not None and waiting.notsent_bytes
            ctrl.on_frame_sent(2, queued, 0.02)
            ctrl.on_tcp_info(waiting, 0.03)
            assert ctrl.bytes_in_flight == queued


def test_the_fields_are_read_at_their_offsets() -> None:
    raw = bytearray(232)
    raw[0], raw[7] = 1, 1  # state, app-limited bit
    struct.pack_into("=I", raw, 16, 1448)  # snd_mss
    struct.pack_into("=I", raw, 24, 3)  # unacked segments
    struct.pack_into("=II", raw, 68, 25_000, 5_000)  # rtt, rttvar (µs)
    struct.pack_into("=I", raw, 80, 10)  # snd_cwnd
    struct.pack_into("=Q", raw, 120, 123_456)  # bytes_acked
    struct.pack_into("=II", raw, 144, 4096, 20_000)  # notsent, min_rtt (µs)
    struct.pack_into("=Q", raw, 160, 625_000)  # delivery rate
    info = parse_tcp_info(bytes(raw))
    assert info is not None
    assert (info.state, info.snd_mss, info.unacked_bytes) == (1, 1448, 3 * 1448)
    assert (info.rtt_s, info.rttvar_s, info.min_rtt_s) == (0.025, 0.005, 0.02)
    assert (info.snd_cwnd, info.bytes_acked, info.notsent_bytes) == (10, 123_456, 4096)
    assert info.delivery_rate_bps == 625_000 and info.delivery_rate_app_limited


def test_an_old_kernel_struct_leaves_new_fields_out() -> None:
    raw = bytearray(104)  # up to tcpi_total_retrans (Linux 3.x)
    raw[0] = 1
    info = parse_tcp_info(bytes(raw))
    assert info is not None
    assert info.notsent_bytes is None and info.min_rtt_s is None
    assert info.delivery_rate_bps is None
    assert parse_tcp_info(b"\x01" * 40) is None
