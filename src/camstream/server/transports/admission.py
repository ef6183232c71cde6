"""Whether a new connection gets a slot: the decision, without sockets.

Three rules keep peers that hold connections from locking viewers out:

* one address holds at most ``max_per_address`` connections (loopback too);
* connections that have not shown the token (*untrusted*: handshaking, or
  HTTP requests without the token) may fill at most ``untrusted_share`` of
  ``max_connections``;
* when that share is used up, or every slot is taken, the oldest untrusted
  connection gives way to the newcomer. If none can (all slots hold viewers
  with the token, or the untrusted ones are still being set up), the newcomer
  is refused.

So idle connections cannot keep a viewer with the token out: only a flood that
opens connections faster than a viewer completes its handshake can.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Decision", "Limits", "decide"]


class Decision(enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"
    EVICT_OLDEST_UNTRUSTED = "evict"


@dataclass(frozen=True)
class Limits:
    max_connections: int
    max_per_address: int
    untrusted_share: float = 0.75


def decide(
    limits: Limits,
    *,
    from_address: int,
    total: int,
    untrusted: int,
    evictable: int,
) -> Decision:
    """What to do with a new connection.

    ``from_address``: connections its address already holds; ``total``: all
    open connections; ``untrusted``: those without the token; ``evictable``: the
    untrusted ones that can be closed now (their transport exists).
    """
    if from_address >= limits.max_per_address:
        return Decision.REFUSE
    full = total >= limits.max_connections
    if not full and untrusted < limits.max_connections * limits.untrusted_share:
        return Decision.ACCEPT
    if evictable > 0:
        return Decision.EVICT_OLDEST_UNTRUSTED
    return Decision.REFUSE
