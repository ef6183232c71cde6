"""Test helpers for comparing images and driving a protocol peer to a given state."""

from __future__ import annotations

import math

import numpy as np

from camstream.codec import Codec
from camstream.wire.protocol import Connection, Hello, Role, State, StreamInfo


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped uint8 images (inf if equal).

    JPEG q80 of a natural image is typically 35-45 dB; below ~25 dB the pictures
    differ visibly.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def streaming_server() -> Connection:
    """A server-side Connection that a real handshake has brought to STREAMING."""
    server = Connection(Role.SERVER)
    server.receive_data(Connection(Role.CLIENT).send(Hello(2, "test")))
    server.send(StreamInfo(4, 2, Codec.JPEG, 30.0))
    assert server.state is State.STREAMING
    return server
