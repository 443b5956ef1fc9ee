"""Headless Chromium against the real pages: a fake webcam (a real talking-face clip) goes
to `headcast serve` over WHIP and the avatar comes back; the WHEP player plays a sink.

Needs Debian's chromium + chromium-driver and selenium; skipped without them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from webrtc_utils import (
    FakeFactory,
    Feeder,
    browser_available,
    chromium,
    clip_frames,
    decode_data_url,
    mean_abs_diff,
    wait_for_js,
    write_y4m,
)

from streamer.webrtc_server import ServerConfig, ServerThread, WebRTCSink

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not browser_available(),
        reason="needs /usr/bin/chromium, /usr/bin/chromedriver and selenium "
        "(apt-get install chromium chromium-driver; pip install selenium)",
    ),
]

PORTRAIT = "einstein.jpg"


@pytest.fixture(scope="module")
def fake_camera(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of a real talking face at 320 × 320, 30 fps, as the browser's webcam."""
    path = tmp_path_factory.mktemp("camera") / "webcam.y4m"
    write_y4m(path, clip_frames(data_dir / "driving" / "woman_long_expressive.mp4", 90, 320))
    return path


@pytest.fixture(scope="module")
def processors(data_dir: Path):  # type: ignore[no-untyped-def]
    """The real Animator on a shared portrait (a FakeFactory where it is not built yet)."""
    try:
        from streamer.portrait import EnrollConfig, enroll_images
        from streamer.video_io import read_image
        from streamer.webrtc_cli import AnimatorFactory
    except ImportError:
        return FakeFactory()
    image = read_image(data_dir / "portraits" / PORTRAIT)
    return AnimatorFactory(enroll_images([image], EnrollConfig()))


@pytest.fixture
def serve(processors) -> Iterator[ServerThread]:  # type: ignore[no-untyped-def]
    server = ServerThread(ServerConfig(port=0), processors=processors)
    server.start()
    yield server
    server.close()


def grab_frames(driver, count: int, every_s: float) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Frames decoded by the browser: the <video> drawn into a canvas, as PNG."""
    frames = []
    for _ in range(count):
        frames.append(decode_data_url(driver.execute_script("return headcast.grab(256).dataUrl")))
        time.sleep(every_s)
    return frames


def assert_moving_picture(frames: list[np.ndarray]) -> None:
    assert all(float(f.mean()) > 20 for f in frames), "the browser shows black frames"
    diffs = [mean_abs_diff(a, b) for a, b in zip(frames, frames[1:], strict=False)]
    assert max(diffs) > 1.0, f"the browser's picture does not change: {diffs}"


def test_serve_page_sends_the_webcam_and_plays_the_avatar(
    serve: ServerThread, fake_camera: Path
) -> None:
    from streamer.tracker import FaceTracker

    with chromium(fake_camera) as driver:
        driver.get(f"{serve.url}/?autostart=1")
        wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'")
        wait_for_js(driver, "document.getElementById('avatar').videoWidth > 0")
        assert serve.session_count("whip") == 1
        sent: list[np.ndarray] = []
        browser: list[np.ndarray] = []
        for _ in range(6):  # what the server sent and what the browser shows, over 3 s
            frame, _ = serve.server.slot.get()
            assert frame is not None
            sent.append(frame.image)
            browser += grab_frames(driver, 1, 0.5)
        assert driver.execute_script("return headcast.state.error") is None
        driver.get("about:blank")  # the tab leaves: its session must be freed
        deadline = time.monotonic() + 10
        while serve.session_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert serve.session_count() == 0
    assert_moving_picture(browser)
    with FaceTracker(video=False) as tracker:
        faces = sum(tracker.detect(image) is not None for image in sent)
    assert faces >= len(sent) - 1, f"a face in only {faces} of {len(sent)} avatar frames"
    assert all(mean_abs_diff(a, b) > 0.1 for a, b in zip(sent, sent[1:], strict=False)), (
        "the avatar does not move"
    )


def test_player_page_plays_the_webrtc_output(data_dir: Path) -> None:
    clip = clip_frames(data_dir / "driving" / "man_glasses_office.mp4", 60, 256)
    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    sink.open(256, 256, 25.0)
    try:
        with Feeder(sink.send, clip, 25.0), chromium() as driver:
            driver.get(f"{sink.url}/")
            wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'")
            wait_for_js(driver, "document.getElementById('avatar').videoWidth === 256")
            frames = grab_frames(driver, 5, 0.3)
            assert sink.viewer_count() == 1
        assert_moving_picture(frames)
    finally:
        sink.close()
