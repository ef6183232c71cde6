"""End to end on 127.0.0.1: a real Server, real sockets, real clients.

Sources are small (320x240) and, where pictures are compared, made of known
images that carry their own index in a strip of black/white blocks, so every
decoded image can be compared with the exact image it came from.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camstream.client.threaded import Client
from camstream.client.videocapture import VideoCapture
from camstream.errors import ConnectionClosed
from camstream.frame import Codec
from camstream.server.server import Server
from camstream.wire.protocol import Connection, Hello, Role, StreamInfo
from imaging import psnr
from netfaults import wait_until
from processes import Command, child_env, stop_cleanly

WIDTH, HEIGHT = 320, 240
INDEX_BITS = 8
BLOCK = WIDTH // INDEX_BITS  # one bit per 40x16 block in the top strip
JPEG_MIN_PSNR_DB = 30.0  # q80 on these smooth images gives about 38-42 dB


def known_image(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A distinct, JPEG-friendly image whose top strip encodes ``index``."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x * 255 // width + index * 7) % 256
    image[..., 1] = (y * 255 // height + index * 13) % 256
    image[..., 2] = ((x + y) * 127 // (width + height) + index * 29) % 256
    cv2.circle(image, (40 + (index * 9) % (width - 80), height // 2), 24, (255, 255, 255), -1)
    block = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        on = (index >> bit) & 1
        image[0:16, bit * block : (bit + 1) * block] = 255 if on else 0
    return image


def read_index(image: np.ndarray) -> int:
    block = image.shape[1] // INDEX_BITS
    index = 0
    for bit in range(INDEX_BITS):
        centre = image[4:12, bit * block + 8 : (bit + 1) * block - 8]
        if centre.mean() > 128:
            index |= 1 << bit
    return index


class RawViewer:
    """A native viewer on a bare socket: does the handshake, then does what the test says."""

    def __init__(self, port: int, credit_window: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = Connection(Role.CLIENT)
        self.sock.sendall(self.conn.send(Hello(credit_window, "raw-test-viewer")))
        self.info: StreamInfo | None = None
        while self.info is None:
            chunk = self.sock.recv(64)  # small reads: stop right after the stream info
            assert chunk, "server closed during the handshake"
            for event in self.conn.receive_data(chunk):
                if isinstance(event, StreamInfo):
                    self.info = event

    def reset(self) -> None:
        """Vanish like a killed process: RST, not FIN (SO_LINGER with a zero timeout)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_viewers() -> Iterator[Callable[..., RawViewer]]:
    opened: list[RawViewer] = []

    def open_(port: int, credit_window: int = 2) -> RawViewer:
        viewer = RawViewer(port, credit_window)
        opened.append(viewer)
        return viewer

    yield open_
    for viewer in opened:
        viewer.close()


def viewer_stats(server: Server, name_port: int) -> dict[str, Any]:
    for viewer in server.status()["viewers"]:
        if viewer["address"].endswith(f":{name_port}"):
            return dict(viewer)
    raise AssertionError(f"no viewer from port {name_port} in {server.status()['viewers']}")


# -- many viewers, order, fidelity ------------------------------------------------------


def test_several_clients_at_once_see_increasing_sequence_numbers(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", width=WIDTH, height=HEIGHT, fps=30)
    clients = [Client(server.url).open() for _ in range(3)]
    capture = VideoCapture(server.url, timeout_s=10)
    try:
        assert capture.isOpened(), capture.last_error
        seqs: list[list[int]] = [[] for _ in clients]
        for _ in range(15):
            for client, seen in zip(clients, seqs, strict=True):
                seen.append(client.read_frame(timeout_s=10).seq)
        for seen in seqs:
            assert all(a < b for a, b in itertools.pairwise(seen)), seen
        positions = []
        for _ in range(5):
            ok, image = capture.read()
            assert ok and image is not None and image.shape == (HEIGHT, WIDTH, 3)
            positions.append(capture.get(cv2.CAP_PROP_POS_FRAMES))
        assert positions == sorted(set(positions))
        wait_until(lambda: server.status()["viewer_count"] == 4, 5, "four viewers")
        # One encode for everyone: the viewers share frames, the server does not
        # encode per viewer.
        status = server.status()
        assert status["frames_encoded"] <= status["images_captured"] + 2
    finally:
        capture.release()
        for client in clients:
            client.close()


@pytest.mark.parametrize(
    ("codec", "options"),
    [(Codec.JPEG, {"quality": 80}), (Codec.PNG, {"codec": Codec.PNG, "png_compression": 1})],
    ids=["jpeg-q80", "png"],
)
def test_decoded_images_match_their_source_images(
    running_server: Callable[..., Server], codec: Codec, options: dict[str, Any]
) -> None:
    images = [known_image(i) for i in range(40)]
    server = running_server(iter(images), fps=40, **options)
    offsets = set()
    checked = 0
    with Client(server.url, reconnect=False) as client:
        for received in client:  # ends cleanly when the iterable is exhausted
            assert received.frame.codec is codec
            image = received.image
            index = read_index(image)
            offsets.add(received.seq - index)
            if codec is Codec.PNG:
                assert np.array_equal(image, images[index]), f"image {index} differs"
            else:
                quality = psnr(image, images[index])
                assert quality >= JPEG_MIN_PSNR_DB, f"image {index}: {quality:.1f} dB"
            checked += 1
    assert checked >= 10, f"only {checked} of 40 images arrived"
    assert len(offsets) == 1, "sequence numbers must follow the source order"
    assert server.status()["ended"] is not None


def test_file_source_streams_its_frames(
    running_server: Callable[..., Server], tmp_path: Path
) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (WIDTH, HEIGHT))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(20):
        writer.write(known_image(i))
    writer.release()
    reference = cv2.VideoCapture(str(path))
    originals = []
    while True:
        ok, image = reference.read()
        if not ok:
            break
        originals.append(image)
    reference.release()
    assert len(originals) == 20

    server = running_server(str(path), fps=60)  # a file is paced; 60 fps keeps this short
    indexes = []
    with Client(server.url, reconnect=False) as client:
        for received in client:
            index = read_index(received.image)
            assert psnr(received.image, originals[index]) >= JPEG_MIN_PSNR_DB
            indexes.append(index)
    assert len(indexes) >= 5
    assert indexes == sorted(set(indexes))  # in file order, none twice
    assert "clip.avi" in server.status()["source"]


# -- slow, stalled and killed viewers -------------------------------------------------


def test_slow_reader_skips_frames_while_fast_reader_keeps_full_rate(
    running_server: Callable[..., Server], raw_viewers: Callable[..., RawViewer]
) -> None:
    server = running_server("test", width=WIDTH, height=HEIGHT, fps=30)
    fast_seqs: list[int] = []
    slow: list[tuple[int, float]] = []  # (seq, age in seconds when read)
    stop = threading.Event()

    def read_fast(client: Client) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                fast_seqs.append(client.read_frame(timeout_s=1).seq)

    with Client(server.url) as fast, Client(server.url) as slow_client:
        fast.read_frame(timeout_s=10)
        slow_client.read_frame(timeout_s=10)
        stalled = raw_viewers(server.port, credit_window=1)  # takes 1 frame, then never acks
        reader = threading.Thread(target=read_fast, args=(fast,))
        published_before = server.status()["frames_published"]
        reader.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                received = slow_client.read_received(timeout_s=5)
                slow.append((received.seq, received.age_s))
                time.sleep(0.25)  # a viewer that takes a quarter second per frame
        finally:
            stop.set()
            reader.join()
        published = server.status()["frames_published"] - published_before
        stalled_port = stalled.sock.getsockname()[1]
        stalled_stats = viewer_stats(server, stalled_port)

    assert published >= 20, f"the source itself was too slow: {published} frames in ~2 s"
    # The fast reader got (nearly) every frame, in order.
    assert len(fast_seqs) >= 0.7 * published, (len(fast_seqs), published)
    assert fast_seqs == sorted(set(fast_seqs))
    # The slow reader skipped frames, and what it read was fresh, not a backlog.
    slow_seqs = [seq for seq, _ in slow]
    assert len(slow) <= 10
    assert slow_seqs == sorted(set(slow_seqs))
    assert (slow_seqs[-1] - slow_seqs[0]) / (len(slow_seqs) - 1) >= 3
    assert max(age for _, age in slow) < 1.0, slow  # a backlog would reach ~2 s
    # The stalled viewer got its one credit's worth; the server skipped the rest.
    assert stalled_stats["frames_sent"] <= 1
    assert stalled_stats["frames_dropped"] >= 20


def test_viewer_killed_mid_frame_does_not_disturb_the_others(
    running_server: Callable[..., Server], raw_viewers: Callable[..., RawViewer]
) -> None:
    server = running_server("test", width=WIDTH, height=HEIGHT, fps=30)
    with Client(server.url) as steady:
        last = steady.read_frame(timeout_s=10).seq
        for _ in range(3):
            victim = raw_viewers(server.port)
            partial = victim.sock.recv(1000)  # a frame is ~15 kB: this is part of one
            events = victim.conn.receive_data(partial)
            assert not events, "expected only part of a frame"
            assert victim.conn.buffered_bytes > 0
            victim.reset()
            for _ in range(3):
                seq = steady.read_frame(timeout_s=5).seq
                assert seq > last
                last = seq
        wait_until(lambda: server.status()["viewer_count"] == 1, 10, "the dead viewers to go")
        assert steady.stats.reconnects == 0
        assert steady.state == "streaming"
    with Client(server.url, reconnect=False) as newcomer:
        assert newcomer.read_frame(timeout_s=10).width == WIDTH


# -- restarts ----------------------------------------------------------------------------


def test_viewer_and_library_reconnect_after_server_restart() -> None:
    """Headless `camstream view`, Client and VideoCapture all ride out a restart."""
    options: dict[str, Any] = {"width": WIDTH, "height": HEIGHT, "fps": 30}
    first = Server("test", host="127.0.0.1", port=0, **options).__enter__()
    port = first.port
    second: Server | None = None
    client = Client(f"127.0.0.1:{port}").open()
    capture = VideoCapture(f"camstream://127.0.0.1:{port}", timeout_s=1)
    viewer = Command(["view", "--headless", f"127.0.0.1:{port}"], env=child_env())
    try:
        assert capture.isOpened(), capture.last_error
        before = client.read_frame(timeout_s=10)
        assert capture.read()[0]
        viewer.wait_for_line(lambda line: "streaming" in line and "320x240" in line, 20)

        first.__exit__(None, None, None)
        wait_until(lambda: client.state == "reconnecting", 10, "the client to notice")
        index, line = viewer.wait_for_line("reconnecting", 15)
        # The reason, and the real (growing) age of the picture, not a frozen one.
        assert "(" in line and line.rstrip().endswith(")"), line
        assert re.search(r"age +\d+\.\d s ", line), line
        # A frame that arrived just before the outage may still be waiting; then nothing.
        with contextlib.suppress(TimeoutError):
            client.read_frame(timeout_s=0)
        capture.read()
        assert not capture.read()[0]  # no frame during the outage, and no exception

        restarted_ns = time.time_ns()
        second = Server("test", host="127.0.0.1", port=port, **options).__enter__()
        after = client.read_frame(timeout_s=15)
        assert after.captured_at_ns > restarted_ns  # from the new server
        assert (after.width, after.height) == (before.width, before.height)
        assert client.stats.reconnects == 1
        wait_until(lambda: capture.read()[0], 15, "VideoCapture to read again")
        viewer.wait_for_line(
            lambda line: "streaming" in line and " fps   0.0" not in line, 15, start=index
        )
        assert stop_cleanly(viewer, signal.SIGINT) == 0, viewer.stderr
        summary = viewer.stdout_lines[-1]
        assert summary.startswith("received ") and "reconnects 1" in summary, viewer.stdout
        assert "Traceback" not in viewer.stderr
    finally:
        viewer.close()
        capture.release()
        client.close()
        first.__exit__(None, None, None)
        if second is not None:
            second.__exit__(None, None, None)


def test_end_of_stream_ends_the_iteration_not_with_an_error(
    running_server: Callable[..., Server],
) -> None:
    server = running_server([known_image(i) for i in range(5)], fps=50)
    with Client(server.url) as client:  # reconnect on: an ended stream still ends it
        seqs = [received.seq for received in client]
        assert seqs == sorted(seqs) and len(seqs) >= 1
        with pytest.raises(ConnectionClosed):
            client.read_frame(timeout_s=1)
