"""WebRTC in-process over loopback: WHEP playback, WHIP serve, sessions, auth, uploads."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from webrtc_utils import (
    MARK_ROWS,
    FakeFactory,
    Feeder,
    clip_frames,
    dominant_hz,
    mean_abs_diff,
    receive,
    rms,
    whep_receive,
    whip_sessions_end,
)

from streamer.errors import SinkUnavailableError
from streamer.frames import Frame
from streamer.webrtc_client import (
    EndpointConfig,
    SignallingError,
    WebRTCSession,
    run_client,
    whip_sink,
)
from streamer.webrtc_server import (
    InsecureBindError,
    PortInUseError,
    ServerConfig,
    ServerThread,
    WebRTCSink,
    decode_image,
    resolve_token,
)
from streamer.webrtc_tracks import AvatarTrack, FrameClock, FrameSlot
from tests.helpers import flat_png, wait_until

FPS = 25.0


@pytest.fixture(scope="module")
def clip(data_dir: Path) -> list[np.ndarray]:
    """60 real talking-face frames, 256 × 256."""
    return clip_frames(data_dir / "driving" / "woman_long_expressive.mp4", 60)


@pytest.fixture
def serve() -> Iterator[tuple[ServerThread, FakeFactory]]:
    factory = FakeFactory()
    with ServerThread(ServerConfig(port=0, max_upload_bytes=64 * 1024),
                      processors=factory) as server:
        yield server, factory


def assert_animated(images: list[np.ndarray]) -> None:
    diffs = [mean_abs_diff(a, b) for a, b in zip(images, images[1:], strict=False)]
    assert np.median(diffs) > 0.2, f"consecutive frames barely differ: {diffs[:10]}"
    assert all(float(im.mean()) > 20 for im in images), "black frames received"


async def http(
    method: str, url: str, data: bytes | str = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, url, data=data, headers=headers or {}) as response,
    ):
        return response.status, dict(response.headers), await response.text()


# ---- tracks -------------------------------------------------------------------------


def test_frame_clock_pts_follow_wall_time_and_never_burst() -> None:
    async def run() -> list[int]:
        clock = FrameClock(50.0)
        pts = [await clock.tick() for _ in range(3)]
        await asyncio.sleep(0.2)  # a stalled loop: the next frames must not come as a burst
        start = time.monotonic()
        pts += [await clock.tick() for _ in range(3)]
        assert time.monotonic() - start > 0.025
        return pts

    pts = asyncio.run(run())
    assert pts == sorted(set(pts))
    assert pts[1] - pts[0] == pytest.approx(1800, abs=2)  # 90 kHz / 50 fps
    assert pts[3] - pts[2] > 0.2 * 90000 * 0.9


def test_frame_clock_that_wakes_late_stamps_the_frame_when_it_woke() -> None:
    """The loop stalls 0.2 s while a tick sleeps: that frame goes out 0.2 s late, and its
    pts say so (they said when it had been due: what it carried was heard as sent then)."""
    async def run() -> list[int]:
        clock = FrameClock(50.0)
        pts = [await clock.tick() for _ in range(3)]
        asyncio.get_running_loop().call_later(0.005, time.sleep, 0.2)
        return pts + [await clock.tick() for _ in range(2)]

    pts = asyncio.run(run())
    assert pts[3] - pts[2] > 0.18 * 90000
    assert pts[4] - pts[3] == pytest.approx(1800, abs=2)


def test_each_viewer_track_reads_the_newest_frame_itself() -> None:
    slot = FrameSlot()
    image = np.full((64, 64, 3), 200, np.uint8)

    async def run() -> tuple[int, int]:
        fast, stalled = AvatarTrack(slot, 50.0), AvatarTrack(slot, 50.0)
        first = await stalled.recv()  # then never read again: a stuck viewer
        assert first.width == 320  # the black placeholder before any frame
        for i in range(10):
            slot.put(Frame(image, time.monotonic(), i))
            await fast.recv()
        assert fast.last_frame is not None and fast.last_frame.index == 9
        return fast.frames_sent, stalled.frames_sent

    assert asyncio.run(run()) == (10, 1)


# ---- --output webrtc: WHEP viewers ----------------------------------------------------


def test_whep_viewer_gets_animated_frames_at_the_source_rate(clip: list[np.ndarray]) -> None:
    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    try:
        sink.open(256, 256, FPS)
        with Feeder(sink.send, clip, FPS):
            got = asyncio.run(whep_receive(f"{sink.url}/whep", 3.0))
        assert len(got.images) >= 40
        assert got.images[0].shape == (256, 256, 3)
        assert_animated(got.images)
        assert 0.7 * FPS < got.fps < 1.3 * FPS, f"{got.fps:.1f} fps received"
        assert wait_until(lambda: sink.viewer_count() == 0)
    finally:
        sink.close()
        sink.close()  # idempotent


def test_a_viewer_that_vanishes_frees_its_session(clip: list[np.ndarray]) -> None:
    """A WHEP viewer killed without its DELETE (no DTLS close) held one of --max-sessions
    for the ~30 s of ICE consent expiry. Its session now closes once it sends no receiver
    report for idle_timeout_s (3 s here), and a viewer that keeps watching is left alone."""
    sink = WebRTCSink(ServerConfig(port=0, idle_timeout_s=3.0), announce=lambda line: None)
    sink.open(256, 256, FPS)

    async def watch_then_vanish() -> tuple[int, int, float]:
        session = await WebRTCSession.open(EndpointConfig(f"{sink.url}/whep"), None, True)
        try:
            got = await receive(session, 5.0)  # longer than the timeout: still watched
            watching = sink.viewer_count()

            async def mute(packet: object) -> None:  # as a killed process: nothing more
                return None

            for receiver in session.pc.getReceivers():
                receiver._send_rtcp = mute  # type: ignore[method-assign]
            start = time.monotonic()
            while sink.viewer_count() and time.monotonic() - start < 15:
                await asyncio.sleep(0.2)
            return len(got.images), watching, time.monotonic() - start
        finally:
            await session.close()

    try:
        with Feeder(sink.send, clip, FPS):
            frames, watching, freed_after = asyncio.run(watch_then_vanish())
    finally:
        sink.close()
    assert frames >= 60 and watching == 1
    # 3 s after its last report, which came up to a second or so before it fell silent (2.0 s
    # after, in 2 runs of 10 here)
    assert 1.5 < freed_after < 6.0, f"freed after {freed_after:.1f} s"


def test_several_viewers_at_once(clip: list[np.ndarray]) -> None:
    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    sink.open(256, 256, FPS)

    async def three_viewers() -> list:
        url = f"{sink.url}/whep"
        return await asyncio.gather(*(whep_receive(url, 2.0) for _ in range(3)))

    try:
        with Feeder(sink.send, clip, FPS):
            results = asyncio.run(three_viewers())
        for got in results:
            assert len(got.images) >= 25
            assert_animated(got.images)
        assert wait_until(lambda: sink.viewer_count() == 0)
    finally:
        sink.close()


def test_player_page_and_whip_refused_in_playback_mode() -> None:
    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    sink.open(64, 64, FPS)
    try:
        status, _, page = asyncio.run(http("GET", f"{sink.url}/"))
        assert status == 200 and "/whep" in page
        status, _, js = asyncio.run(http("GET", f"{sink.url}/static/headcast.js"))
        assert status == 200 and "application/sdp" in js
        status, _, body = asyncio.run(
            http("POST", f"{sink.url}/whip", "v=0", {"Content-Type": "application/sdp"})
        )
        assert status == 404 and "headcast serve" in body
    finally:
        sink.close()


# ---- headcast serve: WHIP in, avatar back ----------------------------------------------


def test_whip_sends_camera_and_gets_processed_video_back(
    serve: tuple[ServerThread, FakeFactory], clip: list[np.ndarray]
) -> None:
    server, factory = serve
    slot = FrameSlot()

    async def run() -> tuple:
        track = AvatarTrack(slot, FPS, (256, 256))
        session = await WebRTCSession.open(EndpointConfig(f"{server.url}/whip"), track, True)
        try:
            assert session.location.startswith(f"{server.url}/whip/")
            got = await receive(session, 2.5)
            viewer = await whep_receive(f"{server.url}/whep", 1.0)  # WHEP plays it too
            return got, viewer
        finally:
            await session.close()

    with Feeder(slot.put, clip, FPS):
        got, viewer = asyncio.run(run())
    assert len(got.images) >= 30
    assert_animated(got.images)
    for image in got.images + viewer.images[-5:]:  # the FakeProcessor's white bar
        assert image[: MARK_ROWS - 2].mean() > 230 and image[MARK_ROWS + 4 :].mean() < 200
    # flipped: the returned frame matches a mirrored source frame better than an unmirrored
    mirrored = min(mean_abs_diff(got.images[-1][MARK_ROWS:], c[MARK_ROWS:, ::-1]) for c in clip)
    straight = min(mean_abs_diff(got.images[-1][MARK_ROWS:], c[MARK_ROWS:]) for c in clip)
    assert mirrored < straight
    (processor,) = factory.processors
    assert processor.threads and threading.main_thread().name not in processor.threads
    assert wait_until(lambda: server.session_count() == 0)
    assert processor.closed == 1


def test_a_whip_session_says_what_its_avatar_waits_for(
    serve: tuple[ServerThread, FakeFactory], clip: list[np.ndarray]
) -> None:
    """GET on a WHIP session's location: its processor's status, which the page shows."""
    server, factory = serve
    slot = FrameSlot()

    async def run() -> list[tuple[int, str]]:
        track = AvatarTrack(slot, FPS, (256, 256))
        session = await WebRTCSession.open(EndpointConfig(f"{server.url}/whip"), track, True)
        try:
            await receive(session, 0.5)
            answers = [await http("GET", session.location, b"", {})]
            factory.processors[0].said = "hold still: taking your resting face"
            answers.append(await http("GET", session.location, b"", {}))
            answers.append(await http("GET", f"{server.url}/whip/nope", b"", {}))
            return [(status, body) for status, _, body in answers]
        finally:
            await session.close()

    with Feeder(slot.put, clip, FPS):
        (s1, b1), (s2, b2), (s3, b3) = asyncio.run(run())
    assert (s1, json.loads(b1)) == (200, {"status": None})
    assert (s2, json.loads(b2)) == (200, {"status": "hold still: taking your resting face"})
    assert s3 == 404 and "no such WHIP session" in b3


@pytest.mark.parametrize("overlap", [True, False])
def test_a_staged_processor_overlaps_its_halves_and_is_switched_between_frames(
    clip: list[np.ndarray], overlap: bool
) -> None:
    """The Animator tracks frame n + 1 on one thread while it renders frame n on another
    (`serve --no-overlap`: one thread); uploads and recalibration wait until no frame is
    between the halves."""
    factory = FakeFactory(staged_s=0.02)
    with ServerThread(ServerConfig(port=0, overlap=overlap), processors=factory) as server:
        slot = FrameSlot()

        async def run() -> tuple:
            session = await WebRTCSession.open(
                EndpointConfig(f"{server.url}/whip"), AvatarTrack(slot, FPS, (256, 256)), True)
            try:
                got = await receive(session, 1.5)
                for _ in range(5):  # while frames flow
                    status, _, _ = await http("POST", f"{server.url}/recalibrate", b"", {})
                    assert status == 200
                return got
            finally:
                await session.close()

        with Feeder(slot.put, clip, FPS):
            got = asyncio.run(run())
    (processor,) = factory.processors
    assert len(got.images) >= 15
    assert_animated(got.images)
    for image in got.images:
        assert image[: MARK_ROWS - 2].mean() > 230
    if overlap:
        assert processor.prepare_threads.isdisjoint(processor.finish_threads)
        assert processor.overlapped > 0  # a frame was tracked while the previous one rendered
    else:
        assert processor.prepare_threads == processor.finish_threads
        assert processor.overlapped == 0
    assert processor.recalibrations == 5 and processor.closed == 1
    assert processor.switched_mid_frame == 0


def test_delete_ends_the_session_and_unknown_is_404(
    serve: tuple[ServerThread, FakeFactory],
) -> None:
    server, factory = serve

    async def run() -> tuple[int, int, int]:
        session = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False
        )
        await session.wait_connected()
        assert server.server.count("whip") == 1
        first = (await http("DELETE", session.location))[0]
        second = (await http("DELETE", session.location))[0]
        patch = (await http("PATCH", session.location))[0]
        await session.pc.close()
        return first, second, patch

    assert asyncio.run(run()) == (200, 404, 405)
    assert server.session_count() == 0
    assert factory.processors[0].closed == 1


def test_client_that_disconnects_mid_stream_frees_its_session(
    serve: tuple[ServerThread, FakeFactory], clip: list[np.ndarray]
) -> None:
    server, factory = serve
    slot = FrameSlot()

    async def run() -> None:
        session = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(slot, FPS), True
        )
        await receive(session, 0.5)
        assert server.server.count("whip") == 1
        await session.pc.close()  # gone without DELETE, like a closed browser tab

    with Feeder(slot.put, clip, FPS):
        asyncio.run(run())
    assert wait_until(lambda: server.session_count() == 0, timeout=15)
    # the session leaves the count first, then its processor is closed (on its own thread)
    assert wait_until(lambda: factory.processors[0].closed == 1)
    assert factory.processors[0].frames > 0


def test_whip_session_whose_video_stops_is_closed(clip: list[np.ndarray]) -> None:
    factory = FakeFactory()
    with ServerThread(ServerConfig(port=0, idle_timeout_s=1.0), processors=factory) as server:
        slot = FrameSlot()

        async def run() -> float:
            track = AvatarTrack(slot, FPS)
            session = await WebRTCSession.open(EndpointConfig(f"{server.url}/whip"), track, False)
            try:
                await session.wait_connected()
                await asyncio.sleep(0.5)
                track.stop()  # the sender goes silent but never closes (a killed browser)
                return await whip_sessions_end(server)
            finally:
                await session.close()

        with Feeder(slot.put, clip, FPS):
            silent_for = asyncio.run(run())
        assert server.session_count() == 0 and 0.8 < silent_for < 5
        assert wait_until(lambda: factory.processors[0].closed == 1)  # closed after it left
        assert factory.processors[0].frames > 0


def test_max_sessions_then_503(clip: list[np.ndarray]) -> None:
    with ServerThread(ServerConfig(port=0, max_sessions=1)) as server:
        async def run() -> int:
            first = await WebRTCSession.open(EndpointConfig(f"{server.url}/whep"), None, True)
            await first.wait_connected()
            try:
                with pytest.raises(SignallingError, match="max-sessions"):
                    await WebRTCSession.open(EndpointConfig(f"{server.url}/whep"), None, True)
                status, headers, _ = await http(
                    "POST", f"{server.url}/whep", "v=0", {"Content-Type": "application/sdp"}
                )
                assert headers.get("Retry-After")
                return status
            finally:
                await first.close()

        assert asyncio.run(run()) == 503
        assert server.session_count() == 0


def test_whip_sink_pushes_the_avatar_to_a_whip_endpoint(
    serve: tuple[ServerThread, FakeFactory], clip: list[np.ndarray]
) -> None:
    server, factory = serve
    sink = whip_sink(f"{server.url}/whip")
    sink.open(256, 256, FPS)
    try:
        with Feeder(sink.send, clip, FPS):
            assert wait_until(
                lambda: bool(factory.processors) and factory.processors[0].frames > 20
            )
        frame, _ = server.server.slot.get()  # what serve made of the pushed frames
        assert frame is not None and frame.image.shape == (256, 256, 3)
    finally:
        sink.close()
        sink.close()
    assert wait_until(lambda: server.session_count() == 0)


def test_whip_sink_to_nothing_is_sink_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    sink = whip_sink(f"http://127.0.0.1:{port}/whip", timeout_s=3)
    with pytest.raises(SinkUnavailableError, match="cannot reach"):
        sink.open(64, 64, FPS)
    sink.close()


# ---- security, uploads ----------------------------------------------------------------


def test_token_required_when_set() -> None:
    with ServerThread(ServerConfig(port=0, token="s3cret")) as server:
        sdp = {"Content-Type": "application/sdp"}
        url = server.url
        assert asyncio.run(http("POST", f"{url}/whep", "v=0", sdp))[0] == 401
        bad = {**sdp, "Authorization": "Bearer wrong"}
        status, headers, body = asyncio.run(http("POST", f"{url}/whep", "v=0", bad))
        assert status == 401 and "Bearer" in headers["WWW-Authenticate"] and "token" in body
        assert asyncio.run(http("GET", f"{url}/"))[0] == 401
        assert asyncio.run(http("GET", f"{url}/?token=s3cret"))[0] == 200
        assert asyncio.run(http("GET", f"{url}/static/headcast.js"))[0] == 200

        async def play() -> int:
            session = await WebRTCSession.open(EndpointConfig(f"{url}/whep", "s3cret"), None, True)
            await session.wait_connected()
            await session.close()
            return 1

        assert asyncio.run(play()) == 1
        with pytest.raises(SignallingError, match="refused the token given"):
            asyncio.run(WebRTCSession.open(EndpointConfig(f"{url}/whep", "nope"), None, True))
        with pytest.raises(SignallingError, match="wants a token: pass --token"):
            asyncio.run(WebRTCSession.open(EndpointConfig(f"{url}/whep"), None, True))
        page = asyncio.run(http("GET", f"{url}/?token=s3cret"))[2]
        assert '<link rel="icon" href="data:,">' in page  # no /favicon.ico: a 401 behind it


def test_the_printed_address_opens() -> None:
    """A token with + or # printed as is made an address the server refused; a server on
    0.0.0.0 printed http://0.0.0.0:PORT, where a browser gives the page no camera."""
    from streamer.webrtc_server import token_query

    token = "my+secret#1"
    with ServerThread(ServerConfig(host="0.0.0.0", port=0, token=token)) as server:
        assert server.url.startswith("http://localhost:")
        assert token_query(token) == "?token=my%2Bsecret%231" and token_query(None) == ""
        assert asyncio.run(http("GET", f"{server.url}/{token_query(token)}"))[0] == 200
        assert asyncio.run(http("GET", f"{server.url}/?token={token}"))[0] == 401


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(InsecureBindError, match="--token"):
        ServerConfig(host="0.0.0.0")
    assert resolve_token("127.0.0.1", None) is None
    generated = resolve_token("0.0.0.0", None)
    assert generated and len(generated) >= 20
    assert resolve_token("0.0.0.0", "mine") == "mine"
    ServerConfig(host="0.0.0.0", token=generated)


def test_port_in_use_is_a_named_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # each names the option of its own command: serve's --port, stream's --output
        with pytest.raises(PortInUseError, match="already in use.*pass --port with another"):
            ServerThread(ServerConfig(port=port)).start()
        sink = WebRTCSink(ServerConfig(port=port), announce=lambda line: None)
        with pytest.raises(PortInUseError, match=r"already in use.*--output webrtc:PORT$"):
            sink.open(64, 64, FPS)
        assert issubclass(PortInUseError, SinkUnavailableError)
        sink.close()


def test_portrait_upload(serve: tuple[ServerThread, FakeFactory], astronaut_bgr) -> None:  # type: ignore[no-untyped-def]
    server, factory = serve
    url = f"{server.url}/portrait"
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(astronaut_bgr, (128, 128)))
    status, _, body = asyncio.run(http("POST", url, jpeg.tobytes(), {"Content-Type": "image/jpeg"}))
    assert status == 200 and '"ok": true' in body
    assert factory.enrolled == [(128, 128)]

    status, _, body = asyncio.run(http("POST", url, b"GIF89a not really", {}))
    assert status == 415 and "not an image" in body

    big = b"\xff" * (80 * 1024)  # limit is 64 KiB in this fixture
    status, _, body = asyncio.run(http("POST", url, big, {"Content-Type": "image/jpeg"}))
    assert status == 413 and "smaller" in body

    ok, flat = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    status, _, body = asyncio.run(http("POST", url, flat.tobytes(), {"Content-Type": "image/png"}))
    assert status == 422 and "face" in body


def test_portrait_upload_takes_the_face_asked_for(serve: tuple[ServerThread, FakeFactory],
                                                  astronaut_bgr) -> None:  # type: ignore[no-untyped-def]
    server, factory = serve
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(astronaut_bgr, (128, 128)))
    headers = {"Content-Type": "image/jpeg"}
    for query in ("", "?face=2"):
        status, _, _ = asyncio.run(http("POST", f"{server.url}/portrait{query}", jpeg.tobytes(),
                                        headers))
        assert status == 200
    assert factory.faces == [None, 2]
    for bad in ("0", "left", "-1", "%C2%B2"):  # "²" is a digit to str.isdigit, not to int
        status, _, body = asyncio.run(http("POST", f"{server.url}/portrait?face={bad}",
                                           jpeg.tobytes(), headers))
        assert status == 400 and "1 for the leftmost" in body
    assert factory.faces == [None, 2]
    # enrollment's messages name the command line's option; an upload is told its query's
    from streamer.errors import FaceChoiceError
    from streamer.faces import choose_face
    from streamer.webrtc_server import as_query

    faces = [np.array([[x, 0.0, 0.0]] * 478) for x in (10.0, 90.0)]
    with pytest.raises(FaceChoiceError) as info:
        choose_face(faces, "portrait image 1", 9)
    assert as_query(str(info.value)).endswith("?face=9 is not one of them")
    assert as_query("2 faces: choose one with --face N") == "2 faces: choose one with ?face=N"


def test_portrait_multipart_upload_reaches_live_sessions(
    serve: tuple[ServerThread, FakeFactory], astronaut_bgr
) -> None:  # type: ignore[no-untyped-def]
    server, factory = serve
    ok, png = cv2.imencode(".png", cv2.resize(astronaut_bgr, (96, 96)))

    async def run() -> str:
        session = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False
        )
        await session.wait_connected()
        try:
            form = aiohttp.FormData()
            form.add_field("portrait", png.tobytes(), filename="p.png", content_type="image/png")
            async with (
                aiohttp.ClientSession() as client,
                client.post(f"{server.url}/portrait", data=form) as response,
            ):
                assert response.status == 200
                return await response.text()
        finally:
            await session.close()

    assert '"sessions_updated": 1' in asyncio.run(run())
    processor = factory.processors[0]
    assert processor.portraits == ["portrait-1"]
    # made ready in the enroll thread, beside the session's frames, not on their thread
    assert processor.avatar_threads == {"headcast-enroll_0"}
    assert processor.avatar_threads.isdisjoint(processor.threads)


def test_recalibrate_over_http(serve: tuple[ServerThread, FakeFactory]) -> None:
    """POST /recalibrate re-takes the neutral face of every live session (serve), and calls
    the live pipeline's recalibrate() (--output webrtc)."""
    server, factory = serve

    async def run() -> str:
        session = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False
        )
        await session.wait_connected()
        try:
            status, _, body = await http("POST", f"{server.url}/recalibrate", b"", {})
            assert status == 200
            return body
        finally:
            await session.close()

    assert '"recalibrated": 1' in asyncio.run(run())
    assert factory.processors[0].recalibrations == 1

    calls: list[int] = []
    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None,
                      on_recalibrate=lambda: calls.append(1))
    sink.open(64, 64, 30)
    try:
        status, _, _ = asyncio.run(http("POST", f"{sink.url}/recalibrate", b"", {}))
    finally:
        sink.close()
    assert status == 200 and calls == [1]


def test_one_session_takes_its_resting_face_again(serve: tuple[ServerThread, FakeFactory]) -> None:
    """POST /whip/{id}/recalibrate (the page's button): that session's processor only."""
    server, factory = serve

    async def run() -> list[int]:
        open_session = lambda: WebRTCSession.open(  # noqa: E731
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False)
        first, second = await open_session(), await open_session()
        try:
            await first.wait_connected()
            await second.wait_connected()
            answers = [await http("POST", f"{second.location}/recalibrate", b"", {}),
                       await http("POST", f"{server.url}/whip/nope/recalibrate", b"", {})]
            return [status for status, _, _ in answers]
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(run()) == [200, 404]
    assert [p.recalibrations for p in factory.processors] == [0, 1]


def test_decode_image_rejects_non_images() -> None:
    assert decode_image(b"") is None
    assert decode_image(b"<html>") is None
    ok, png = cv2.imencode(".png", np.zeros((4, 6, 3), np.uint8))
    assert decode_image(png.tobytes()).shape == (4, 6, 3)


def test_an_uploaded_cut_out_is_laid_over_white() -> None:
    cut = np.zeros((4, 6, 4), np.uint8)  # black under transparency ...
    cut[:, :3] = (10, 20, 30, 255)  # ... and an opaque left half
    ok, png = cv2.imencode(".png", cut)
    image = decode_image(png.tobytes())
    assert (image[:, :3] == (10, 20, 30)).all() and (image[:, 3:] == 255).all()


def test_offer_needs_sdp_content_type(serve: tuple[ServerThread, FakeFactory]) -> None:
    server, _ = serve
    status, _, body = asyncio.run(
        http("POST", f"{server.url}/whip", "{}", {"Content-Type": "application/json"})
    )
    assert status == 415 and "application/sdp" in body
    for kind in ("whep", "whip"):  # /whip had answered "garbage" with 201 and a session
        status, _, body = asyncio.run(
            http("POST", f"{server.url}/{kind}", "garbage", {"Content-Type": "application/sdp"})
        )
        assert status == 400 and "not an SDP offer of media: it has no m= line" in body
    assert server.session_count() == 0


def test_a_malformed_offer_is_refused_with_400(serve: tuple[ServerThread, FakeFactory],
                                               data_dir: Path) -> None:
    """Offers mutated from a real one, and bodies that are no text: each had answered 500
    with a traceback in the log (aiortc raises AttributeError, AssertionError, StopIteration
    on them); each is a 400 now, no session is left, and the server goes on serving."""
    import re

    from aiortc import RTCPeerConnection, VideoStreamTrack

    server, _ = serve

    async def offer(kind: str) -> str:
        pc = RTCPeerConnection()
        if kind == "whip":
            pc.addTrack(VideoStreamTrack())
        else:
            pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    def mutations(sdp: str) -> Iterator[tuple[str, str]]:
        yield "no setup", re.sub(r"a=setup:.*\r\n", "", sdp)
        yield "setup bogus", re.sub(r"a=setup:\S+", "a=setup:bogus", sdp)
        yield "no rtpmap", re.sub(r"a=rtpmap:.*\r\n", "", sdp)
        yield "no codecs", re.sub(r"(m=video \d+ \S+)( \d+)+", r"\1", sdp)
        yield "bad port", re.sub(r"m=video \d+", "m=video abc", sdp)
        yield "bad candidate", re.sub(r"a=candidate:.*\r\n", "a=candidate:garbage\r\n", sdp)
        yield "video twice", sdp + sdp[sdp.index("m=video"):]
        yield "ssrc garbage", re.sub(r"a=ssrc:\d+", "a=ssrc:xyz", sdp)
        yield "no video", sdp.replace("m=video", "m=application")

    sdp_type = {"Content-Type": "application/sdp"}
    for kind in ("whip", "whep"):
        for name, mutated in mutations(asyncio.run(offer(kind))):
            status, _, body = asyncio.run(http("POST", f"{server.url}/{kind}", mutated,
                                               sdp_type))
            assert status == 400, f"{kind} {name}: {status} {body[:200]}"
        jpeg = (data_dir / "portraits" / "einstein.jpg").read_bytes()
        for data, headers in ((jpeg, sdp_type),
                              ("v=0", {"Content-Type": "application/sdp; charset=bogus"})):
            status, _, body = asyncio.run(http("POST", f"{server.url}/{kind}", data, headers))
            assert status == 400 and "not text" in body
    assert server.session_count() == 0
    status, _, body = asyncio.run(http("GET", f"{server.url}/sessions"))
    assert status == 200 and json.loads(body) == {"whip": 0, "whep": 0}


def test_an_upload_while_a_session_ends_skips_it(serve: tuple[ServerThread, FakeFactory],
                                                 astronaut_bgr) -> None:  # type: ignore[no-untyped-def]
    """A session that ends while an uploaded portrait is made ready for it: the upload had
    answered 500 (its executor shut down) and left the other sessions unswitched."""
    server, factory = serve
    ready = factory.make_avatar

    def slow_make_avatar(processor, portrait):  # type: ignore[no-untyped-def]
        time.sleep(0.6)
        return ready(processor, portrait)

    factory.make_avatar = slow_make_avatar  # type: ignore[method-assign]
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(astronaut_bgr, (96, 96)))

    async def run() -> tuple[int, str]:
        ending = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False)
        staying = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(FrameSlot(), FPS), False)
        await ending.wait_connected()
        await staying.wait_connected()
        try:
            upload = asyncio.ensure_future(http("POST", f"{server.url}/portrait",
                                                jpeg.tobytes(), {"Content-Type": "image/jpeg"}))
            await asyncio.sleep(0.3)
            await ending.close()  # DELETE, while the first avatar is made
            status, _, body = await upload
            return status, body
        finally:
            await staying.close()

    status, body = asyncio.run(run())
    assert status == 200 and '"sessions_updated": 1' in body, body


# ---- headcast client, CLI -------------------------------------------------------------


def test_client_sends_a_clip_and_records_the_avatar(
    serve: tuple[ServerThread, FakeFactory], data_dir: Path, tmp_path: Path
) -> None:
    from streamer.sinks import create_sink
    from streamer.sources import VideoFileSource
    from streamer.video_io import read_video_frames

    server, factory = serve
    out = tmp_path / "avatar.mp4"
    source = VideoFileSource(data_dir / "driving" / "man_green_backdrop.mp4")
    try:
        stats = asyncio.run(
            run_client(
                EndpointConfig(f"{server.url}/whip"),
                source,
                create_sink("record", path=str(out)),
                duration_s=2.0,
            )
        )
    finally:
        source.close()
    assert stats.delivered >= 20 and stats.state != "failed"
    frames = list(read_video_frames(out))
    assert len(frames) >= 20 and frames[0].shape == (512, 512, 3)
    assert frames[-1][: MARK_ROWS - 2].mean() > 200  # processed by the server
    assert wait_until(lambda: server.session_count() == 0)


def test_client_says_when_the_server_ends_its_session(data_dir: Path, tmp_path: Path) -> None:
    """The server stops 1.5 s into a 30 s run: the client raises SourceLostError at once (it
    had returned as if done, and `headcast client` exited 0 without a word), or, where the
    server's goodbye is lost (1 run in 10 here), once no avatar frame has come for its
    idle_timeout_s; what it recorded until then is a whole file."""
    from streamer.errors import SourceLostError
    from streamer.sinks import create_sink
    from streamer.sources import VideoFileSource
    from streamer.video_io import read_video_frames

    with ServerThread(ServerConfig(port=0), processors=FakeFactory()) as server:
        out = tmp_path / "avatar.mp4"
        source = VideoFileSource(data_dir / "driving" / "man_green_backdrop.mp4")
        stopper = threading.Timer(1.5, server.close)
        started = time.monotonic()
        try:
            stopper.start()
            with pytest.raises(SourceLostError, match="the server ended the session"):
                asyncio.run(run_client(EndpointConfig(f"{server.url}/whip", idle_timeout_s=5.0),
                                       source, create_sink("record", path=str(out)),
                                       duration_s=30.0))
        finally:
            stopper.cancel()
            source.close()
    assert time.monotonic() - started < 15.0
    assert len(list(read_video_frames(out))) >= 10


def test_client_gives_up_on_a_server_that_sends_nothing_back(data_dir: Path) -> None:
    """A server whose avatar stops coming back while its connection stays (as one whose
    goodbye was lost looks until ICE gives up, ~30 s): the client raises SourceLostError
    once nothing has come for its idle_timeout_s."""
    from fakes import FakeSink
    from webrtc_utils import FakeProcessor

    from streamer.errors import SourceLostError
    from streamer.sources import VideoFileSource

    release = threading.Event()

    class Hanging(FakeProcessor):
        def process(self, image: np.ndarray) -> np.ndarray:
            if self.frames >= 10:
                release.wait(30.0)  # the avatar stops; the connection lives on
            return super().process(image)

    factory = FakeFactory()
    factory.create = lambda: Hanging()  # type: ignore[method-assign]
    with ServerThread(ServerConfig(port=0, idle_timeout_s=60.0), processors=factory) as server:
        source = VideoFileSource(data_dir / "driving" / "man_green_backdrop.mp4")
        sink = FakeSink()
        started = time.monotonic()
        try:
            with pytest.raises(SourceLostError, match="no avatar frame for 2 s: the server ended"):
                asyncio.run(run_client(EndpointConfig(f"{server.url}/whip", idle_timeout_s=2.0),
                                       source, sink, duration_s=30.0))
            assert time.monotonic() - started < 15.0 and len(sink.received) >= 5
        finally:
            release.set()
            source.close()


def test_client_keeps_its_session_while_the_camera_is_away(
    serve: tuple[ServerThread, FakeFactory], astronaut_bgr: np.ndarray
) -> None:
    """The client's camera stops after 1 s and comes back on its 15th reopen (50 ms apart):
    meanwhile the client sends black frames, so the server's processor keeps getting frames
    and the avatar keeps coming back; the session lives through it."""
    from fakes import FakeSink, fake_camera

    server, factory = serve
    image = cv2.resize(astronaut_bgr, (128, 128))
    source, reader = fake_camera(fps=30.0, fail_after=30, lost_after_s=0.2, camera_wait_s=10.0,
                                 back_after_reopens=15, image=image)
    sink = FakeSink()
    try:
        stats = asyncio.run(run_client(EndpointConfig(f"{server.url}/whip"), source, sink,
                                       duration_s=3.5))
    finally:
        source.close()
    assert reader.reopens == 15 and stats.state != "failed"
    arrivals = [r.received_ts for r in sink.received]
    assert len(arrivals) >= 45
    assert max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) < 0.6
    below_bar = [image[MARK_ROWS:].mean() for image in sink.images]
    assert below_bar[-1] > 50  # the camera's picture again, processed by the server


def test_client_command_line(
    serve: tuple[ServerThread, FakeFactory], data_dir: Path, hum_wav: Path, tmp_path: Path
) -> None:
    """`headcast client --driving CLIP --record OUT --voice hum.wav`: the file has the
    avatar and the voice the server sent back, a 440 Hz hum."""
    import argparse

    import av

    from streamer.webrtc_cli import add_client_command

    server, _ = serve
    parser = argparse.ArgumentParser()
    add_client_command(parser.add_subparsers())
    out = tmp_path / "avatar.mp4"
    clip = data_dir / "driving" / "man_green_backdrop.mp4"
    args = parser.parse_args(
        ["client", "--server", server.url, "--driving", str(clip), "--record", str(out),
         "--voice", str(hum_wav), "--duration", "2.5"]
    )  # fmt: skip
    assert args.func(args) == 0
    with av.open(str(out)) as container:
        assert container.streams.video and container.streams.audio
        heard = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    assert len(heard) > 48_000 and rms(heard) > 0.1
    assert abs(dominant_hz(heard[heard.size // 2:]) - 440) < 5
    assert wait_until(lambda: server.session_count() == 0)


def test_cli_parses_serve_and_client() -> None:
    import argparse

    from streamer.webrtc_cli import add_client_command, add_serve_command, serve_config, whip_url

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_serve_command(sub)
    add_client_command(sub)
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    config = serve_config(args)
    assert config.port == 9000 and config.token and config.overlap  # token generated
    assert serve_config(parser.parse_args(["serve"])).token is None
    assert not serve_config(parser.parse_args(["serve", "--no-overlap"])).overlap
    args = parser.parse_args(["client", "--server", "http://h:8080", "--driving", "c.mp4"])
    assert args.func.__name__ == "run_client_command" and args.driving == "c.mp4"
    assert whip_url("http://h:8080") == "http://h:8080/whip"
    assert whip_url("h:8080/") == "http://h:8080/whip"
    assert whip_url("https://h/ingest/whip") == "https://h/ingest/whip"


def self_signed(tmp_path: Path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 → (cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "headcast-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with ServerThread(ServerConfig(port=0, tls_cert=cert, tls_key=key)) as server:
        async def get() -> int:
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"{server.url}/player", ssl=False) as response,
            ):
                return response.status

        assert server.url.startswith("https://")
        assert asyncio.run(get()) == 200
    with pytest.raises(SinkUnavailableError, match="--cert, --key"):
        ServerConfig(tls_cert=cert)
    broken = ServerThread(ServerConfig(port=0, tls_cert=key, tls_key=key))
    with pytest.raises(SinkUnavailableError, match="certificate"):
        broken.start()
    broken.close()


def test_sink_registry_factories() -> None:
    from streamer.webrtc_client import WhipSink
    from streamer.webrtc_server import webrtc_sink

    sink = webrtc_sink(port=0)
    assert sink.name == "webrtc" and isinstance(sink, WebRTCSink)
    sink.close()
    assert isinstance(whip_sink(url="http://127.0.0.1:9/whip"), WhipSink)
    with pytest.raises(SinkUnavailableError, match="whip:https://"):
        whip_sink()
    exposed = webrtc_sink(host="0.0.0.0", port=0)  # beyond loopback: a token is made up
    assert exposed.config.token


def test_serve_makes_an_uploaded_portrait_ready_for_a_live_animator(astronaut_bgr) -> None:
    """AnimatorFactory, as `serve` runs it: make_avatar (in the enroll thread) builds the
    session's avatar for the portrait enroll() made, apply (on the session's thread) only
    sets it."""
    from streamer.animate import Avatar
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import RendererConfig
    from streamer.webrtc_cli import AnimatorFactory

    factory = AnimatorFactory(enroll_images([astronaut_bgr], EnrollConfig(crop_size=256)),
                              RendererConfig(name="warp"))
    animator = factory.create()
    portrait = factory.enroll(astronaut_bgr[:, ::-1].copy())
    made: list[object] = []
    thread = threading.Thread(target=lambda: made.append(factory.make_avatar(animator, portrait)))
    thread.start()
    thread.join()
    assert isinstance(made[0], Avatar) and animator.portrait is not portrait
    factory.apply(animator, made[0])
    assert animator.portrait is portrait and factory.portrait is portrait
    animator.close()


# ---- big pictures, stale sessions, a browser without the token ---------------------------


def test_a_large_picture_is_taken_at_the_live_size(tmp_path: Path, astronaut_bgr, caplog) -> None:  # type: ignore[no-untyped-def]
    """A 12-megapixel phone photo was animated and sent at 3000x3000 (about a second a frame
    to draw, a quarter of one to encode: 0.3 frames a second in the browser); live commands
    take pictures at LIVE_MAX_SIDE, and WebRTC sends nothing larger."""
    from streamer.frames import LIVE_MAX_SIDE
    from streamer.live_cli import load_portraits as stream_portraits
    from streamer.portrait import enroll_images, save_portrait
    from streamer.webrtc_cli import AnimatorFactory, load_portraits
    from streamer.webrtc_tracks import to_video_frame

    big = cv2.resize(astronaut_bgr, (2400, 1800))
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    assert load_portraits([str(tmp_path / "big.jpg")]).image.shape == (960, LIVE_MAX_SIDE, 3)
    assert stream_portraits([str(tmp_path / "big.jpg")])[0].image.shape == (960, 1280, 3)
    factory = AnimatorFactory(None)
    assert factory.enroll(big).image.shape == (960, 1280, 3)  # an upload
    small = cv2.resize(astronaut_bgr, (400, 300))
    assert factory.enroll(small).image.shape == (300, 400, 3)  # a small one as it is
    frame = to_video_frame(np.zeros((3000, 2001, 3), np.uint8), LIVE_MAX_SIDE)
    assert (frame.height, frame.width) == (1280, 854)
    assert (to_video_frame(small).width, to_video_frame(small, 1280).width) == (400, 400)
    save_portrait(enroll_images([big]), tmp_path / "big.headcast")  # enrolled at full size
    with caplog.at_level(logging.WARNING, "streamer.offline"):
        assert load_portraits([str(tmp_path / "big.headcast")]).image.shape == (1800, 2400, 3)
    assert "big.headcast is 2400x1800: every frame is drawn that large" in caplog.text

    async def sent() -> tuple[int, int]:
        slot = FrameSlot()
        slot.put(Frame(np.zeros((2000, 3000, 3), np.uint8), time.monotonic(), 0))
        out = await AvatarTrack(slot, 30.0).recv()
        return out.height, out.width

    assert asyncio.run(sent()) == (852, 1280)


def test_serve_enrolls_every_shot_of_several_pictures_with_the_neural_model(
        tmp_path: Path, astronaut_bgr) -> None:  # type: ignore[no-untyped-def]
    """`serve --portrait A B` enrolled the shots without the neural embedding, which the
    renderer then took from the rendered shot alone."""
    from streamer.neural import neural_available
    from streamer.offline import enroll_shots
    from streamer.webrtc_cli import load_portraits

    if not neural_available():
        pytest.skip("the neural model is not installed")
    shots = [astronaut_bgr, cv2.resize(astronaut_bgr[20:480, 30:490], (512, 512))]
    for i, shot in enumerate(shots):
        cv2.imwrite(str(tmp_path / f"{i}.png"), shot)
    portrait = load_portraits([str(tmp_path / "0.png"), str(tmp_path / "1.png")])
    assert len(portrait.shots) == 2 and portrait.psi.size
    one = enroll_shots(shots[:1])
    assert not np.allclose(portrait.embedding, one.embedding)  # both shots, not the first


def test_serve_animates_on_the_wall_clock_as_stream_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """serve's sessions counted their resting-face timeout in frames: on a loaded machine
    (3 frames a second) the avatar rested 12-22 s, where stream's waits 2 s."""
    from streamer.live_cli import make_processor
    from streamer.webrtc_cli import AnimatorFactory

    made: list = []
    monkeypatch.setattr("streamer.animate.Animator",
                        lambda portrait, options: made.append(options))
    AnimatorFactory(None).create()
    make_processor(None, 30.0)  # type: ignore[arg-type]
    assert made[0].clock == "wall" and made[0] == made[1]


def test_a_session_that_never_connected_gives_its_place_to_a_new_one() -> None:
    """A page reloaded while it connected left its session (its answer never read, so never
    deleted): with --max-sessions taken by such sessions, the next user was refused until
    connect_timeout_s (20 s)."""
    from aiortc import RTCPeerConnection

    with ServerThread(ServerConfig(port=0, max_sessions=1, stale_connect_s=1.0)) as server:
        async def offer() -> str:
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            sdp = pc.localDescription.sdp
            await pc.close()  # as a page that went away: never connects
            return sdp

        sdp_type = {"Content-Type": "application/sdp"}
        assert asyncio.run(http("POST", f"{server.url}/whep", asyncio.run(offer()),
                                sdp_type))[0] == 201
        status, _, body = asyncio.run(http("POST", f"{server.url}/whep", asyncio.run(offer()),
                                           sdp_type))
        assert status == 503 and "all sessions are in use (1 at most)" in body  # still young
        time.sleep(1.2)
        assert asyncio.run(http("POST", f"{server.url}/whep", asyncio.run(offer()),
                                sdp_type))[0] == 201
        assert server.session_count() == 1

        async def play() -> None:  # a connected session keeps its place however old
            session = await WebRTCSession.open(EndpointConfig(f"{server.url}/whep"), None, True)
            await session.wait_connected()
            await asyncio.sleep(1.2)
            with pytest.raises(SignallingError, match="max-sessions"):
                await WebRTCSession.open(EndpointConfig(f"{server.url}/whep"), None, True)
            await session.close()

        time.sleep(1.2)
        asyncio.run(play())


def test_a_browser_without_the_token_gets_a_page() -> None:
    """A browser opening the address without ?token= was shown the raw JSON error."""
    with ServerThread(ServerConfig(port=0, token="s3cret")) as server:
        status, headers, body = asyncio.run(http("GET", f"{server.url}/", headers={
            "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}))
        assert status == 401 and headers["Content-Type"].startswith("text/html")
        assert "<h1>headcast</h1>" in body and "?token=TOKEN" in body
        status, headers, body = asyncio.run(http("GET", f"{server.url}/sessions"))
        assert status == 401 and json.loads(body)["error"].startswith("missing or wrong token")


def test_an_upload_too_large_in_pixels_says_so() -> None:
    """A 48-megapixel JPEG was refused as "not an image"."""
    factory = FakeFactory()
    with ServerThread(ServerConfig(port=0), processors=factory) as server:
        ok, png = cv2.imencode(".png", np.zeros((6000, 7000, 3), np.uint8))
        status, _, body = asyncio.run(http("POST", f"{server.url}/portrait", png.tobytes(),
                                           {"Content-Type": "image/png"}))
        assert status == 413 and "7000x6000, 42 megapixels: upload one of at most 40" in body
        assert factory.enrolled == []


def test_a_picture_that_would_decode_to_gigabytes_is_refused_by_its_header(monkeypatch) -> None:
    """A PNG of 2.6 MB that says 20000 x 10000 (600 MB once decoded; as few can say 30000 x
    30000, 2.7 GB) is refused from its header: it had been decoded first, so one upload could
    take the server's memory."""
    import streamer.webrtc_server as server_module

    decoded: list[int] = []
    monkeypatch.setattr(server_module, "decode_file_image",
                        lambda data: decoded.append(len(data)))  # it would decode, here None
    factory = FakeFactory()
    with ServerThread(ServerConfig(port=0), processors=factory) as server:
        bomb = flat_png(20_000, 10_000)
        assert len(bomb) < 4_000_000  # under the upload limit (8 MB)
        status, _, body = asyncio.run(http("POST", f"{server.url}/portrait", bomb,
                                           {"Content-Type": "image/png"}))
        assert status == 413 and "20000x10000, 200 megapixels: upload one of at most 40" in body
        assert decoded == [] and factory.enrolled == []


def test_a_server_that_does_not_answer_is_named_with_the_wait() -> None:
    """A server too busy to answer the offer in time was reported as "cannot reach URL ()":
    a timeout's text is empty."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()  # connections queue, nothing answers
        url = f"http://127.0.0.1:{mute.getsockname()[1]}/whip"
        with pytest.raises(SignallingError, match=r"did not answer within 1 s: is the server"):
            asyncio.run(WebRTCSession.open(EndpointConfig(url, timeout_s=1.0), None, True))


@dataclass
class RendererFactory(FakeFactory):
    """A FakeFactory that says which renderer its processors use, as AnimatorFactory does."""

    renderer: str = "neural"


@pytest.mark.parametrize("renderer", ["neural", "warp"])
def test_serve_says_once_when_this_computer_is_too_slow_for_the_neural_renderer(
    clip: list[np.ndarray], renderer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each half of a frame taking 80 ms, a sender at 25 fps gets its avatar from about half
    of its frames: with the neural renderer the log says once that this computer is too
    slow for it and `serve --renderer warp` is lighter; with the training-free one, nothing
    lighter is there to offer."""
    factory = RendererFactory(staged_s=0.08, renderer=renderer)
    with ServerThread(ServerConfig(port=0, slow_hint_s=2.0), processors=factory) as server:
        slot = FrameSlot()

        async def run() -> None:
            session = await WebRTCSession.open(
                EndpointConfig(f"{server.url}/whip"), AvatarTrack(slot, FPS, (256, 256)), True)
            try:
                await receive(session, 5.0)
            finally:
                await session.close()

        with caplog.at_level(logging.WARNING, logger="streamer.webrtc_server"), \
                Feeder(slot.put, clip, FPS):
            asyncio.run(run())
    said = [r.getMessage() for r in caplog.records if "--renderer warp" in r.getMessage()]
    if renderer == "warp":
        assert said == []
    else:
        assert len(said) == 1
        assert re.search(r"the avatar is made from \d+ of the \d+ frames a second its sender "
                         r"gives on this computer: `serve --renderer warp` is lighter", said[0])
