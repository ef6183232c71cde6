"""A camera's feed -> the frames a relay's hub publishes (no sockets)."""

from __future__ import annotations

import asyncio

from camstream.bus.feed import CameraFeed, NoSignal
from camstream.bus.relay_pump import RelayPump
from camstream.frame import Codec, Frame


def live(seq: int, width: int = 320, height: int = 240) -> Frame:
    return Frame(seq, 1, width, height, Codec.JPEG, b"live%d" % seq)


def test_live_frames_pass_through_and_no_signal_becomes_periodic_placeholders() -> None:
    async def scenario() -> list[Frame]:
        published: list[Frame] = []
        sizes: list[tuple[int, int]] = []

        def make_placeholder(width: int, height: int) -> bytes:
            sizes.append((width, height))
            return b"NO SIGNAL"

        feed = CameraFeed("cam1", lambda _: None)
        pump = RelayPump(
            feed, published.append, make_placeholder=make_placeholder, placeholder_interval_s=0.05
        )
        task = asyncio.create_task(pump.run())
        feed.offer(live(10, 640, 360))
        await asyncio.sleep(0.01)
        feed.offer(live(12, 640, 360))
        await asyncio.sleep(0.01)
        feed.offer(NoSignal("cam1", "publisher gone"))
        await asyncio.sleep(0.18)  # the first placeholder at once, then every 50 ms
        # The publisher restarted: the source's seq (13) is below the placeholders'.
        feed.offer(live(13, 640, 360))
        await asyncio.sleep(0.12)  # live again: no more placeholders
        feed.close()
        await asyncio.wait_for(task, 1)
        assert set(sizes) == {(640, 360)}  # placeholders at the camera's own size
        return published

    published = asyncio.run(scenario())
    kinds = ["P" if frame.placeholder else "L" for frame in published]
    assert kinds[:2] == ["L", "L"] and kinds[-1] == "L"
    assert 3 <= kinds.count("P") <= 5, kinds
    assert kinds == ["L", "L"] + ["P"] * kinds.count("P") + ["L"]
    seqs = [frame.seq for frame in published]
    assert seqs[:2] == [10, 12]  # the source's numbering (gaps = skipped frames)
    assert seqs == sorted(set(seqs)), seqs
    assert published[-1].data == b"live13"
