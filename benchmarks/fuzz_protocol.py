"""Throw random and mutated byte streams at camstream.wire.protocol.Connection.

Every input must end in events or a clean RemoteProtocolError: any other
exception, a receive buffer larger than one header plus the largest body the
connection accepts, or a valid stream being rejected is a bug, and the script
then exits with status 1.

    python benchmarks/fuzz_protocol.py --iterations 100000 --seed 1

Only the standard library's ``random`` drives it, so a run is reproducible from
its seed (each input also has its own seed, printed with any failure).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable

from camstream.errors import RemoteProtocolError
from camstream.frame import Codec, Frame
from camstream.wire.protocol import (
    HEADER_SIZE,
    MAGIC,
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
    StreamInfo,
)

MAX_PAYLOAD = 4096
MAX_BUFFERED = HEADER_SIZE + 22 + MAX_PAYLOAD  # FRAME is the largest type
INFO = StreamInfo(640, 480, Codec.JPEG, 30.0, "fuzz")
START_STATES = ["fresh", "hello", "challenged", "streaming"]


def receiver(role: Role, start: str) -> Connection:
    """A connection of ``role`` brought to ``start`` by a well-behaved peer."""
    conn = Connection(role, max_payload_bytes=MAX_PAYLOAD)
    client = conn if role is Role.CLIENT else Connection(Role.CLIENT)
    server = conn if role is Role.SERVER else Connection(Role.SERVER)
    if start == "fresh":
        return conn
    server.receive_data(client.send(Hello()))
    if start == "challenged":
        client.receive_data(server.send(Challenge(bytes(32))))
        server.receive_data(client.send(Auth(bytes(32))))
    if start == "streaming":
        client.receive_data(server.send(INFO))
    return conn


def random_text(rng: random.Random, limit: int) -> str:
    alphabet = "abcxyz é€😀\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))


def heartbeat(rng: random.Random) -> Ping | Pong:
    token = rng.getrandbits(64)
    return Ping(token) if rng.random() < 0.5 else Pong(token)


def random_server_event(rng: random.Random) -> Event:
    kind = rng.random()
    if kind < 0.6:
        return Frame(
            rng.getrandbits(64),
            rng.getrandbits(64),
            rng.getrandbits(16),
            rng.getrandbits(16),
            rng.choice(list(Codec)),
            rng.randbytes(rng.choice([0, 1, 10, 200, 1000])),
            rng.random() < 0.1,
        )
    if kind < 0.8:
        return heartbeat(rng)
    return StreamInfo(rng.getrandbits(16), rng.getrandbits(16), Codec.PNG, rng.random() * 60)


def random_client_event(rng: random.Random) -> Event:
    if rng.random() < 0.6:
        return Credit(rng.getrandbits(32), rng.getrandbits(64))
    return heartbeat(rng)


def valid_stream(rng: random.Random, role: Role, start: str) -> bytes:
    """Bytes a well-behaved peer could send to ``receiver(role, start)``."""
    parts: list[bytes] = []
    if role is Role.SERVER:
        if start == "fresh":
            peer = Connection(Role.CLIENT)
            parts.append(peer.send(Hello(rng.randint(1, 0xFFFF), random_text(rng, 20))))
        else:
            peer = receiver(Role.CLIENT, start)
        events: list[Event] = [random_client_event(rng) for _ in range(rng.randint(0, 10))]
        if start != "streaming":  # credit is only valid once streaming
            events = [e for e in events if not isinstance(e, Credit)]
    else:
        peer = receiver(Role.SERVER, start if start != "fresh" else "hello")
        events = [random_server_event(rng) for _ in range(rng.randint(0, 10))]
        if start in ("hello", "challenged", "fresh"):
            events.insert(0, INFO)
    if rng.random() < 0.3:
        events.append(Goodbye(rng.choice(list(GoodbyeCode)), random_text(rng, 300)))
    parts += [peer.send(event) for event in events]
    return b"".join(parts)


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "truncate", "insert", "delete", "splice", "header"])
        pos = rng.randint(0, len(out))
        if op == "flip" and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete":
            del out[pos : pos + rng.randint(1, 32)]
        elif op == "splice":  # a piece of another valid stream
            start = rng.randint(0, len(other))
            out[pos:pos] = other[start : start + rng.randint(1, 256)]
        elif op == "header":  # a plausible header with a random type and length
            msg_type = rng.choice([*MessageType, 0, 10, 255])
            length = rng.choice([0, 1, 8, 32, 1000, MAX_PAYLOAD + 22, 2**32 - 1])
            head = MAGIC + bytes([PROTOCOL_VERSION, msg_type]) + length.to_bytes(4, "big")
            out[pos:pos] = head
    return bytes(out)


def make_input(rng: random.Random, role: Role, start: str) -> tuple[str, bytes]:
    kind = rng.choice(["random", "random-after-magic", "valid", "mutated", "mutated", "spliced"])
    if kind == "random":
        return kind, rng.randbytes(rng.randint(0, 512))
    if kind == "random-after-magic":
        return kind, MAGIC + bytes([PROTOCOL_VERSION]) + rng.randbytes(rng.randint(0, 256))
    data = valid_stream(rng, role, start)
    if kind == "valid":
        return kind, data
    other = valid_stream(rng, rng.choice(list(Role)), rng.choice(START_STATES))
    if kind == "spliced":
        return kind, data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]
    return kind, mutate(rng, data, other)


def feed(conn: Connection, data: bytes, rng: random.Random) -> tuple[int, bool]:
    """Feed ``data`` in random chunks; return (events, ended in a protocol error)."""
    events = pos = 0
    max_chunk = rng.choice([1, 7, 64, 1500, 65536])
    try:
        while pos < len(data):
            size = rng.randint(1, max_chunk)
            events += len(conn.receive_data(data[pos : pos + size]))
            pos += size
            if conn.buffered_bytes > MAX_BUFFERED:
                raise AssertionError(f"buffered {conn.buffered_bytes} > {MAX_BUFFERED} bytes")
        conn.receive_eof()
    except RemoteProtocolError:
        try:
            conn.receive_data(b"CS")
        except RemoteProtocolError:
            return events, True
        raise AssertionError("receive_data accepted bytes after an error") from None
    return events, False


def run(iterations: int, seed: int, report: Callable[[str], None]) -> int:
    master = random.Random(seed)
    totals: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    step = max(1, iterations // 10)
    for i in range(1, iterations + 1):
        case_seed = master.getrandbits(64)
        rng = random.Random(case_seed)
        role, start = rng.choice(list(Role)), rng.choice(START_STATES)
        kind, data = make_input(rng, role, start)
        kinds[kind] += 1
        totals["bytes"] += len(data)
        try:
            events, failed = feed(receiver(role, start), data, rng)
        except Exception as exc:  # anything but a RemoteProtocolError is a bug
            totals["other exceptions"] += 1
            if len(failures) < 5:
                failures.append(
                    f"input {i} (case seed {case_seed}, {role.value}/{start}/{kind}, "
                    f"{len(data)} bytes): {exc!r}\n{traceback.format_exc()}"
                )
        else:
            totals["events"] += events
            totals["protocol errors" if failed else "clean inputs"] += 1
            if failed and kind == "valid" and not (role is Role.CLIENT and start == "fresh"):
                totals["other exceptions"] += 1  # a valid stream must never be rejected
                failures.append(f"input {i} (case seed {case_seed}): valid stream rejected")
        if i % step == 0 or i == iterations:
            elapsed = time.perf_counter() - started
            report(
                f"[{elapsed:7.1f}s] {i:>8}/{iterations} inputs  events={totals['events']}  "
                f"protocol errors={totals['protocol errors']}  "
                f"other exceptions={totals['other exceptions']}"
            )
    elapsed = time.perf_counter() - started
    report("")
    report(f"seed:                        {seed}")
    report(f"inputs:                      {iterations}  ({dict(sorted(kinds.items()))})")
    report(f"bytes fed:                   {totals['bytes']}")
    report(f"events produced:             {totals['events']}")
    report(f"inputs ending cleanly:       {totals['clean inputs']}")
    report(f"clean protocol errors:       {totals['protocol errors']}")
    report(f"other exceptions (must be 0): {totals['other exceptions']}")
    report(f"elapsed:                     {elapsed:.1f} s ({iterations / elapsed:,.0f} inputs/s)")
    for failure in failures:
        report("\nFAILURE " + failure)
    return 1 if totals["other exceptions"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100_000, help="inputs to try")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: random)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    return run(args.iterations, seed, print)


if __name__ == "__main__":
    sys.exit(main())
