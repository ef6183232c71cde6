"""Benchmark viewers, run inside child processes (multiprocessing, spawn).

Each child runs ``spec["viewers"]`` viewers as threads (decoding releases the
GIL), waits for the parent's "go", streams until the agreed stop time and sends
back, per viewer, one sample per decoded frame: (decoded_at_ns, age_ns, seq,
payload bytes). The age is ``time.time_ns()`` right after decoding minus the
frame's ``captured_at_ns`` (server and viewers share this host's clock).

Viewers decode as the implementation ships: camstream's with
``camstream.codec.decode``, the seed's with ``cv2.imdecode``; ``spec["decoder"]``
("camstream", "cv2", "simplejpeg-fast") overrides that for experiments.

The child also reads its own CPU time (``time.process_time()``, all threads) at
the start and end of the measurement window.
"""

from __future__ import annotations

import contextlib
import resource
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Sample = tuple[int, int, int, int]  # decoded_at_ns, age_ns, seq, payload bytes


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


DECODERS = ("camstream", "cv2", "simplejpeg-fast")


def decoder_name(spec: dict[str, Any]) -> str:
    """The viewer's decoder: ``spec["decoder"]``, else what that implementation ships.

    camstream viewers decode with ``camstream.codec.decode`` (simplejpeg, OpenCV
    fallback), as ``Client.read()`` does; the seed decodes with ``cv2.imdecode``.
    """
    name: str = spec.get("decoder") or ("cv2" if spec.get("impl") == "seed" else "camstream")
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {DECODERS}")
    return name


def make_decoder(name: str) -> Callable[[Any], Any]:
    if name == "cv2":  # exactly the seed's client
        from seed_baseline import SeedClient

        return SeedClient.decode
    if name == "simplejpeg-fast":  # experiment: fast DCT and upsampling (lower quality)
        import simplejpeg

        def decode_fast(data: Any) -> Any:
            return simplejpeg.decode_jpeg(data, "BGR", fastdct=True, fastupsample=True)

        return decode_fast
    from camstream.codec import decode

    return decode


def _camstream_client(spec: dict[str, Any]) -> Any:
    from camstream.client.threaded import Client
    from camstream.config import ClientConfig

    config = ClientConfig(reconnect=False, credit_window=spec.get("credit_window", 2))
    return Client(f"127.0.0.1:{spec['port']}", config=config)


def stream_camstream(spec: dict[str, Any], stop_ns: int, out: dict[str, Any]) -> None:
    decode = make_decoder(decoder_name(spec))
    work_s = spec.get("work_ms", 0) / 1000.0
    samples: list[Sample] = out["samples"]
    client = _camstream_client(spec)
    opened_ns = time.time_ns()
    with client:
        while time.time_ns() < stop_ns:
            try:
                frame = client.read_frame(0.5)
            except TimeoutError:
                continue
            decode(frame.data)
            now = time.time_ns()
            samples.append((now, now - frame.captured_at_ns, frame.seq, len(frame.data)))
            if out["ttff_ms"] is None:
                out["ttff_ms"] = (now - opened_ns) / 1e6
            if work_s:
                time.sleep(work_s)
        stats = client.stats
        out["client_frames_dropped"] = stats.frames_dropped
        out["client_frames_received"] = stats.frames_received


def stream_seed(spec: dict[str, Any], stop_ns: int, out: dict[str, Any]) -> None:
    from seed_baseline import SeedClient

    decode = make_decoder(decoder_name(spec))
    work_s = spec.get("work_ms", 0) / 1000.0
    samples: list[Sample] = out["samples"]
    opened_ns = time.time_ns()
    client = SeedClient(spec["port"])
    client.sock.settimeout(5.0)
    seq = 0
    try:
        while time.time_ns() < stop_ns:
            captured_at_ns, payload = client.read_frame()
            decode(payload)
            now = time.time_ns()
            samples.append((now, now - captured_at_ns, seq, len(payload)))
            seq += 1
            if out["ttff_ms"] is None:
                out["ttff_ms"] = (now - opened_ns) / 1e6
            if work_s:
                time.sleep(work_s)
    finally:
        client.close()


def ttff_trials(spec: dict[str, Any], out: dict[str, Any]) -> None:
    """Open a fresh client ``trials`` times; time start → first decoded frame."""
    decode = make_decoder(decoder_name(spec))
    times: list[float] = out["ttff_trials_ms"]
    for _ in range(spec["trials"]):
        started = time.perf_counter()
        if spec["impl"] == "seed":
            from seed_baseline import SeedClient

            seed = SeedClient(spec["port"])
            seed.sock.settimeout(5.0)
            decode(seed.read_frame()[1])
            times.append((time.perf_counter() - started) * 1000.0)
            seed.close()
        else:
            with _camstream_client(spec) as client:
                decode(client.read_frame(5.0).data)
                times.append((time.perf_counter() - started) * 1000.0)
        time.sleep(spec.get("gap_s", 0.2))


def _run_one(spec: dict[str, Any], stop_ns: int, out: dict[str, Any]) -> None:
    try:
        if spec.get("mode") == "ttff":
            ttff_trials(spec, out)
        elif spec["impl"] == "seed":
            stream_seed(spec, stop_ns, out)
        else:
            stream_camstream(spec, stop_ns, out)
    except Exception as exc:  # reported to the parent, which shows it
        out["error"] = f"{type(exc).__name__}: {exc}"


def viewer_process(spec: dict[str, Any], pipe: Connection) -> None:
    """Child process entry: ready → wait for go → stream → send results."""
    # Import the heavy modules before saying ready, so start-up is not measured.
    import camstream.client.threaded
    import camstream.codec  # noqa: F401
    from _measure import nodelay_off, tune_malloc

    if spec.get("malloc_tuned"):
        tune_malloc()
    if not spec.get("nodelay", True):
        nodelay_off()  # the client sets TCP_NODELAY on its socket; this turns it off
    make_decoder(decoder_name(spec))
    pipe.send(("ready",))
    _tag, port, go_ns, window_start_ns, window_end_ns, stop_ns = pipe.recv()
    spec = {**spec, "port": port}  # the server starts while this process imports
    outs: list[dict[str, Any]] = [
        {"samples": [], "ttff_ms": None, "ttff_trials_ms": [], "error": None}
        for _ in range(spec["viewers"])
    ]
    cpu: dict[str, float] = {}

    def monitor() -> None:
        _sleep_until(window_start_ns)
        cpu["start"], cpu["faults_start"] = time.process_time(), _minor_faults()
        _sleep_until(window_end_ns)
        cpu["end"], cpu["faults_end"] = time.process_time(), _minor_faults()

    _sleep_until(go_ns)
    threads = [threading.Thread(target=monitor, daemon=True)]
    threads += [
        threading.Thread(target=_run_one, args=(spec, stop_ns, out), daemon=True) for out in outs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, (stop_ns - time.time_ns()) / 1e9 + 10.0))
    cpu_s = cpu["end"] - cpu["start"] if "end" in cpu else None
    faults = cpu["faults_end"] - cpu["faults_start"] if "end" in cpu else 0
    with contextlib.suppress(BrokenPipeError):
        pipe.send(("result", {"viewers": outs, "cpu_s": cpu_s, "minor_faults": faults}))


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
