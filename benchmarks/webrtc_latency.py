"""Latency added by the WebRTC paths, measured with frame ids painted into the pictures.

Each frame carries its id as 16 black/white blocks in the top-left corner; the receiver
reads the id back from the decoded picture and the time it was put in is looked up.
All times are time.time() (one machine, one clock, browser included:
performance.timeOrigin + performance.now()).

Paths:
  aiortc-whep       sink.send() → WebRTCSink → Python WHEP viewer decodes it
  aiortc-whip-rt    Python WHIP client → `serve` (pass-through processor) → back to it
  chromium-whep     sink.send() → WebRTCSink → headless Chromium's <video> (read on each
                    requestVideoFrameCallback from a canvas)
  chromium-serve-rt Chromium's fake webcam → `serve` (pass-through) → Chromium: the id as
                    shown in the page's own camera <video> vs in the avatar <video>

Also saves a strip of what Chromium received from `serve` with the real Animator animating a
portrait from a real clip as its webcam (--strip, default docs/webrtc_strip.png).

Run from the project root: python -m benchmarks.webrtc_latency [--seconds 6] [--no-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

FPS = 30.0
SIZE = 320  # frames are SIZE × SIZE

# ---- frame ids as black/white blocks ---------------------------------------------------

CODE_BITS = 16
CODE_BLOCK = 12  # px per bit: large enough to survive VP8 at low bitrates
CODE_COLS = 8  # 16 bits in 2 rows of 8, top-left, framed by one white block


def paint_code(image: np.ndarray, value: int) -> np.ndarray:
    """A copy of `image` with `value` (0 … 65535) painted into its top-left corner."""
    out = image.copy()
    b = CODE_BLOCK
    out[: (CODE_BITS // CODE_COLS + 2) * b, : (CODE_COLS + 2) * b] = 255
    for bit in range(CODE_BITS):
        r, c = divmod(bit, CODE_COLS)
        if (value >> bit) & 1:
            out[(r + 1) * b : (r + 2) * b, (c + 1) * b : (c + 2) * b] = 0
    return out


def read_code(image: np.ndarray) -> int:
    """The value paint_code() painted: the centre of each block, dark = 1."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    value, b = 0, CODE_BLOCK
    for bit in range(CODE_BITS):
        r, c = divmod(bit, CODE_COLS)
        y, x = (r + 1) * b + b // 2, (c + 1) * b + b // 2
        if float(gray[y - 2 : y + 3, x - 2 : x + 3].mean()) < 128:
            value |= 1 << bit
    return value


# The same reader in the browser: draws the corner of a <video> into a canvas on every
# presented frame and logs [id, time.time() in ms].
READ_CODE_JS = """
window.codeLog = window.codeLog || {};
window.watchCodes = (id) => {
  const video = document.getElementById(id);
  const B = CODE_BLOCK, BITS = CODE_BITS, COLS = CODE_COLS;
  const canvas = document.createElement("canvas");
  canvas.width = (COLS + 2) * B; canvas.height = (BITS / COLS + 2) * B;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const log = (window.codeLog[id] = []);
  const step = (now) => {
    const at = performance.timeOrigin + performance.now();
    g.drawImage(video, 0, 0, canvas.width, canvas.height, 0, 0, canvas.width, canvas.height);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let v = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const r = Math.floor(bit / COLS), c = bit % COLS;
      const i = (((r + 1) * B + B / 2) * canvas.width + (c + 1) * B + B / 2) * 4;
      if (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2] < 128) v |= 1 << bit;
    }
    log.push([v, at]);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
};
""".replace("CODE_BLOCK", str(CODE_BLOCK)).replace("CODE_BITS", str(CODE_BITS))
READ_CODE_JS = READ_CODE_JS.replace("CODE_COLS", str(CODE_COLS))


# ---- helpers shared with tests/test_browser.py ---------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_available() -> bool:
    """Debian's chromium + chromium-driver and the selenium package are installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


def write_y4m(path: Path, frames: Sequence[np.ndarray], fps: int = 30) -> None:
    """BGR frames (one even size) → a YUV4MPEG2 file, usable as Chromium's fake webcam."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y, U, V planes


def write_wav(path: Path, samples: np.ndarray, rate: int = 48_000) -> None:
    """samples: (n,) float, -1..1, mono → a 16-bit WAV, usable as Chromium's fake microphone."""
    import wave

    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@contextlib.contextmanager
def chromium(  # type: ignore[type-arg]
    fake_camera: Path | None = None, fake_microphone: Path | None = None
) -> Iterator:
    """Headless Chromium (a selenium WebDriver) with a fresh profile; a y4m as webcam, a
    WAV as microphone (looped)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="headcast-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        # plain host candidates: aiortc cannot resolve the mDNS names Chromium hides IPs behind
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]
    if fake_camera is not None:
        flags.append(f"--use-file-for-fake-video-capture={fake_camera}")
    if fake_microphone is not None:
        flags.append(f"--use-file-for-fake-audio-capture={fake_microphone}")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_js(driver, script: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """Poll `return <script>` until truthy → its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script!r} (last value {value!r})")


def decode_data_url(data_url: str) -> np.ndarray:
    """'data:image/png;base64,…' → (H, W, 3) uint8 BGR."""
    data = base64.b64decode(data_url.split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the page returned no image")
    return image


# ---- measurement ------------------------------------------------------------------------


class Feeder:
    """Puts frames into a sink-like `put(Frame)` callable at `fps`, looping, in a thread;
    `sent` counts them."""

    def __init__(self, put, frames: Sequence[np.ndarray], fps: float = FPS) -> None:  # type: ignore[no-untyped-def]
        self._put = put
        self._frames = frames
        self._fps = fps
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def image(self, index: int) -> np.ndarray:
        """The picture put as frame `index`."""
        return self._frames[index % len(self._frames)]

    def _run(self) -> None:
        from streamer.frames import Frame

        due = time.monotonic()
        while not self._stop.is_set():
            self._put(Frame(self.image(self.sent), time.monotonic(), self.sent))
            self.sent += 1
            due += 1.0 / self._fps
            self._stop.wait(max(0.0, due - time.monotonic()))


class CodedFeeder(Feeder):
    """A Feeder whose frames carry painted ids; `times` remembers when each id went in
    (time.time())."""

    def __init__(self, put, frames: Sequence[np.ndarray], fps: float = FPS) -> None:  # type: ignore[no-untyped-def]
        super().__init__(put, frames, fps)
        self.times: dict[int, float] = {}

    def image(self, index: int) -> np.ndarray:
        code = index % 65536
        self.times[code] = time.time()
        return paint_code(super().image(index), code)


def latencies(sent: dict[int, float], seen: Sequence[tuple[int, float]]) -> list[float]:
    """Seconds from put to first sighting, per id (repeats of an id are not counted)."""
    first: dict[int, float] = {}
    for code, at in seen:
        if code in sent and code not in first and at >= sent[code]:
            first[code] = at
    return [first[c] - sent[c] for c in first]


def summary(name: str, values: Sequence[float], note: str = "") -> str:
    if not values:
        return f"{name:18s} no frames identified {note}"
    ms = np.asarray(values) * 1000.0
    return (
        f"{name:18s} p50 {np.percentile(ms, 50):6.1f} ms  p95 {np.percentile(ms, 95):6.1f} ms  "
        f"n={len(ms):4d}  {note}"
    )


class PassThrough:
    """A FrameProcessor that returns the frame unchanged (after `seconds`: a renderer that
    slow): measures transport only."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def process(self, image: np.ndarray) -> np.ndarray:
        if self.seconds:
            time.sleep(self.seconds)
        return image

    def recalibrate(self) -> None:
        pass

    def status(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class PassThroughFactory:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds  # each frame's processing time

    def create(self) -> PassThrough:
        return PassThrough(self.seconds)

    def enroll(self, image: np.ndarray, face: int | None = None) -> object:
        return None

    def make_avatar(self, processor: PassThrough, portrait: object) -> object:
        return portrait

    def apply(self, processor: PassThrough, avatar: object) -> None:
        pass


async def _read_codes(track, seconds: float) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, float]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = await asyncio.wait_for(track.recv(), 5)
        at = time.time()
        seen.append((read_code(frame.to_ndarray(format="gray")), at))
    return seen


def aiortc_whep(frames: Sequence[np.ndarray], seconds: float) -> list[float]:
    from streamer.webrtc_server import ServerConfig, WebRTCSink

    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    sink.open(SIZE, SIZE, FPS)

    try:
        with CodedFeeder(sink.send, frames) as feeder:
            seen = asyncio.run(_received_codes(f"{sink.url}/whep", None, seconds))
        return latencies(feeder.times, seen)
    finally:
        sink.close()


async def _received_codes(url: str, send, seconds: float) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    """Open a WHIP/WHEP session (sending `send` when given), read the ids of the video that
    comes back for `seconds` after a 1 s warm-up (first keyframe, jitter buffer)."""
    from streamer.webrtc_client import EndpointConfig, WebRTCSession

    session = await WebRTCSession.open(EndpointConfig(url), send, True)
    try:
        track = await asyncio.wait_for(session.remote_video, 10)
        await _read_codes(track, 1.0)
        return await _read_codes(track, seconds)
    finally:
        await session.close()


def aiortc_whip_roundtrip(frames: Sequence[np.ndarray], seconds: float) -> list[float]:
    from streamer.webrtc_server import ServerConfig, ServerThread
    from streamer.webrtc_tracks import AvatarTrack, FrameSlot

    server = ServerThread(ServerConfig(port=0), processors=PassThroughFactory())
    server.start()
    slot = FrameSlot()

    try:
        with CodedFeeder(slot.put, frames) as feeder:
            track = AvatarTrack(slot, FPS, (SIZE, SIZE))
            seen = asyncio.run(_received_codes(f"{server.url}/whip", track, seconds))
        return latencies(feeder.times, seen)
    finally:
        server.close()


def chromium_whep(frames: Sequence[np.ndarray], seconds: float) -> list[float]:
    from streamer.webrtc_server import ServerConfig, WebRTCSink

    sink = WebRTCSink(ServerConfig(port=0), announce=lambda line: None)
    sink.open(SIZE, SIZE, FPS)
    try:
        with CodedFeeder(sink.send, frames) as feeder, chromium() as driver:
            driver.get(f"{sink.url}/player")
            wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'")
            wait_for_js(driver, "document.getElementById('avatar').videoWidth > 0")
            time.sleep(1.0)
            driver.execute_script(READ_CODE_JS + "watchCodes('avatar');")
            time.sleep(seconds)
            seen = driver.execute_script("return codeLog.avatar")
        return latencies(feeder.times, [(int(c), at / 1000.0) for c, at in seen])
    finally:
        sink.close()


def chromium_serve_roundtrip(frames: Sequence[np.ndarray], seconds: float) -> list[float]:
    """Ids painted into the fake webcam file; both <video>s of the page are read."""
    from streamer.webrtc_server import ServerConfig, ServerThread

    server = ServerThread(ServerConfig(port=0), processors=PassThroughFactory())
    server.start()
    with tempfile.TemporaryDirectory() as tmp:
        camera = Path(tmp) / "coded.y4m"
        count = int(FPS * 10)
        write_y4m(camera, [paint_code(frames[i % len(frames)], i) for i in range(count)])
        try:
            with chromium(camera) as driver:
                driver.get(f"{server.url}/?autostart=1")
                wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'")
                wait_for_js(driver, "document.getElementById('avatar').videoWidth > 0")
                time.sleep(1.0)
                driver.execute_script(READ_CODE_JS + "watchCodes('camera'); watchCodes('avatar');")
                time.sleep(seconds)
                log = driver.execute_script("return codeLog")
        finally:
            server.close()
    camera = [(int(c), at / 1000.0) for c, at in log["camera"]]
    avatar = [(int(c), at / 1000.0) for c, at in log["avatar"]]
    return paired_latencies(camera, avatar, loop_s=count / FPS)


def paired_latencies(
    shown: Sequence[tuple[int, float]], back: Sequence[tuple[int, float]], loop_s: float
) -> list[float]:
    """For each id seen back, the time since the page's camera first showed it. The file
    loops, so only camera sightings less than half a loop earlier are paired."""
    first_shown: dict[int, list[float]] = {}
    for code, at in shown:
        times = first_shown.setdefault(code, [])
        if not times or at - times[-1] > loop_s / 2:  # a new pass through the file
            times.append(at)
    values, used = [], set()
    for code, at in back:
        earlier = [t for t in first_shown.get(code, []) if 0 <= at - t < loop_s / 2]
        if earlier and (code, earlier[-1]) not in used:
            used.add((code, earlier[-1]))
            values.append(at - earlier[-1])
    return values


def save_strip(data_dir: Path, out: Path, portrait: str, count: int = 8) -> None:
    """What Chromium shows from `serve` with the real Animator: camera row over avatar row."""
    from streamer.portrait import enroll_images
    from streamer.video_io import read_image
    from streamer.webrtc_cli import AnimatorFactory
    from streamer.webrtc_server import ServerConfig, ServerThread

    factory = AnimatorFactory(enroll_images([read_image(data_dir / "portraits" / portrait)]))
    server = ServerThread(ServerConfig(port=0), processors=factory)
    server.start()
    clip = clip_frames(data_dir / "driving" / "woman_long_expressive.mp4", 150, SIZE)
    grab_camera = (
        "const v = document.getElementById('camera'); const c = document.createElement"
        "('canvas'); c.width = 192; c.height = 192; c.getContext('2d').drawImage(v, 0, 0, "
        "192, 192); return c.toDataURL('image/png');"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            camera = Path(tmp) / "webcam.y4m"
            write_y4m(camera, clip)
            with chromium(camera) as driver:
                driver.get(f"{server.url}/?autostart=1")
                wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'")
                wait_for_js(driver, "document.getElementById('avatar').videoWidth > 0")
                time.sleep(1.5)
                cams, avatars = [], []
                for _ in range(count):
                    cams.append(decode_data_url(driver.execute_script(grab_camera)))
                    url = driver.execute_script("return headcast.grab(256).dataUrl")
                    avatars.append(decode_data_url(url))
                    time.sleep(0.5)
    finally:
        server.close()
    tile = 128  # keeps the PNG small enough for git
    top = np.hstack([cv2.resize(c, (tile, tile)) for c in cams])
    bottom = np.hstack([_fit(a, tile) for a in avatars])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack([top, bottom]))


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = tile / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    canvas = np.zeros((tile, tile, 3), np.uint8)
    y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def clip_frames(path: Path, count: int, size: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    capture.release()
    if not frames:
        raise SystemExit(f"no frames in {path}")
    return frames


def main(argv: Sequence[str] | None = None) -> int:
    from streamer.output_file import parent_folder_argument
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.webrtc_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per path")
    parser.add_argument("--no-browser", action="store_true", help="aiortc paths only")
    parser.add_argument("--strip", type=parent_folder_argument,
                        default=Path("docs/webrtc_strip.png"))
    parser.add_argument("--portrait", default="einstein.jpg", help="portrait for the strip")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    args = parser.parse_args(argv)
    from benchmarks.quality import default_data_dir

    data_dir = args.data or default_data_dir()
    frames = clip_frames(data_dir / "driving" / "man_glasses_office.mp4", 90, SIZE)
    print(
        f"frames {SIZE}x{SIZE} at {FPS:.0f} fps, {args.seconds:.0f} s per path; "
        "VP8 both ways, pass-through processing"
    )
    print(summary("aiortc-whep", aiortc_whep(frames, args.seconds), "sink.send → viewer"))
    print(
        summary(
            "aiortc-whip-rt", aiortc_whip_roundtrip(frames, args.seconds), "client → serve → client"
        )
    )
    if args.no_browser or not browser_available():
        print("chromium: skipped (needs chromium, chromium-driver and selenium)")
        return 0
    print(
        summary(
            "chromium-whep", chromium_whep(frames, args.seconds), "sink.send → Chromium <video>"
        )
    )
    print(
        summary(
            "chromium-serve-rt",
            chromium_serve_roundtrip(frames, args.seconds),
            "page camera <video> → serve → avatar <video>",
        )
    )
    save_strip(data_dir, args.strip, args.portrait)
    print(f"wrote {args.strip}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
