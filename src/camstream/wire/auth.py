"""Challenge-response authentication with a shared token.

The server sends a random nonce; the client answers HMAC-SHA256(token, context || nonce).
The token never crosses the wire, a recorded answer is useless for the next
nonce, and the server compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .protocol import NONCE_SIZE

__all__ = ["compute_digest", "new_nonce", "verify_digest"]

_CONTEXT = b"camstream-auth-v1:"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def compute_digest(token: str, nonce: bytes) -> bytes:
    return hmac.new(token.encode("utf-8"), _CONTEXT + nonce, hashlib.sha256).digest()


def verify_digest(token: str, nonce: bytes, digest: bytes) -> bool:
    return hmac.compare_digest(compute_digest(token, nonce), digest)
