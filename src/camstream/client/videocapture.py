"""A drop-in for ``cv2.VideoCapture`` that reads a camstream stream.

Existing OpenCV loops keep working unchanged::

    cap = VideoCapture("camstream://192.168.1.5:8080")  # or the server's http:// URL
    while cap.isOpened():
        ok, image = cap.read()

Unlike OpenCV's network capture, ``read()`` always returns the newest frame
(frames the loop was too slow for are dropped, not queued), and, like OpenCV,
network trouble shows up as ``(False, None)`` rather than an exception.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import cv2

from ..config import StreamAddress
from ..errors import CamstreamError, ConfigError, DecodeError
from ..frame import Frame
from .threaded import Client
from .values import Image, ReceivedFrame, scaled_to

__all__ = ["VideoCapture"]


class VideoCapture:
    """cv2.VideoCapture look-alike; ``client_options`` go to :class:`camstream.Client`.

    The constructor waits up to ``timeout_s`` for the first connection. If that
    fails, :meth:`isOpened` is False and :attr:`last_error` says why.
    """

    def __init__(
        self,
        address: str | StreamAddress,
        *,
        timeout_s: float = 5.0,
        scale_to_stream: bool = True,
        **client_options: Any,
    ) -> None:
        self._timeout_s = timeout_s
        # OpenCV code assumes every image has one shape. On a thin link the server
        # sends a smaller tier; read() scales it up to the stream's size unless
        # scale_to_stream=False asks for the raw tier (see last_frame for its size).
        self._scale_to_stream = scale_to_stream
        self._grabbed: ReceivedFrame | None = None
        self._last_frame: Frame | None = None
        self._error: str | None = None
        http_url = address if isinstance(address, str) and _is_http(address) else None
        if http_url is not None:
            address = native_address_for(http_url)
        self._client: Client | None = Client(address, **client_options).open()
        try:
            self._client.wait_connected(timeout_s)
        except CamstreamError as exc:
            self._error = str(exc)
            if http_url is not None:
                self._error += (
                    f"; {http_url} was read as a camstream server's page (same port, native "
                    "protocol). For another MJPEG server, use cv2.VideoCapture(url)"
                )
            self.release()

    def isOpened(self) -> bool:
        return self._client is not None and self._client.state != "closed"

    def grab(self) -> bool:
        """Wait up to ``timeout_s`` for a frame newer than the last one; don't decode it."""
        if self._client is None:
            return False
        try:
            self._grabbed = self._client.read_received(self._timeout_s)
        except CamstreamError as exc:
            self._error = str(exc)
            self._grabbed = None
            return False
        self._last_frame = self._grabbed.frame
        return True

    def retrieve(self) -> tuple[bool, Image | None]:
        """Decode the frame from the last successful :meth:`grab`."""
        if self._grabbed is None:
            return False, None
        try:
            image = self._grabbed.image
        except DecodeError as exc:
            self._error = str(exc)
            return False, None
        info = self._client.stream_info if self._client is not None else None
        size = (info.width, info.height) if info is not None else (0, 0)
        if self._scale_to_stream and all(size):
            image = scaled_to(image, size)
        return True, image

    def read(self) -> tuple[bool, Image | None]:
        """``(True, image)`` with the newest image, or ``(False, None)``."""
        if not self.grab():
            return False, None
        return self.retrieve()

    def get(self, prop_id: int) -> float:
        """Width, height, fps and position (last frame's seq); 0.0 for anything else."""
        info = self._client.stream_info if self._client is not None else None
        frame = self._last_frame
        if self._scale_to_stream and info is not None and info.width:
            frame_size = (info.width, info.height)
        else:
            frame_size = (frame.width, frame.height) if frame else (0, 0)
        if prop_id == cv2.CAP_PROP_FRAME_WIDTH:
            return float(frame_size[0] or (info.width if info else 0))
        if prop_id == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(frame_size[1] or (info.height if info else 0))
        if prop_id == cv2.CAP_PROP_FPS:
            if info is not None and info.fps > 0:
                return float(info.fps)
            # The source has no nominal rate (an iterable, some cameras): the rate
            # frames actually arrive at is the honest answer, as for a live camera.
            return float(round(self._client.stats.fps, 2)) if self._client is not None else 0.0
        if prop_id == cv2.CAP_PROP_POS_FRAMES:
            return float(frame.seq) if frame else 0.0
        return 0.0

    def set(self, prop_id: int, value: float) -> bool:
        """Nothing can be set on a remote stream; False, as OpenCV says for unsupported."""
        return False

    def release(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._grabbed = None

    @property
    def last_frame(self) -> Frame | None:
        """Metadata (seq, capture time, size) of the last frame grabbed."""
        return self._last_frame

    @property
    def last_error(self) -> str | None:
        """Why the last open/read failed, since read() itself only says False."""
        return self._error

    @property
    def client(self) -> Client | None:
        """The underlying client (for stats), or None after release()."""
        return self._client

    def __enter__(self) -> VideoCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # OpenCV releases on garbage collection too; do the same so a forgotten
        # capture does not keep its thread and socket.
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def _is_http(address: str) -> bool:
    return address.lower().startswith(("http://", "https://"))


def native_address_for(url: str) -> str:
    """``http://host:port/stream.mjpg?token=T`` → ``camstream://host:port?token=T``.

    A camstream server speaks both protocols on one port, so an address copied
    from its banner or the browser works here too, over the native protocol
    (newest frame wins, no client-side buffering).
    """
    parts = urlsplit(url)
    scheme = "camstreams" if parts.scheme.lower() == "https" else "camstream"
    default_port = 443 if scheme == "camstreams" else 80
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigError(f"bad address {url!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"no host in address {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    token = parse_qs(parts.query).get("token", [None])[0]
    query = f"?{urlencode({'token': token})}" if token else ""
    return f"{scheme}://{host}:{port}{query}"
