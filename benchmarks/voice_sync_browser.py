"""Voice and avatar in step where people hear them: in Chromium.

Headless Chromium runs `serve`'s page with a made-up camera and microphone: a canvas whose
centre turns bright and a WebAudio hum, switched on together every `period` seconds (half a
period each) from the page's one clock. `serve`'s processor passes the picture through after
`render_ms`. A second tab plays the avatar on the `/player` page and records what it plays
(MediaRecorder); the sending page records its own avatar and voice with its Record button.
In each WebM the bright frames and the hum are found: skew = hum − bright (positive: the voice
is late). This is the whole way, browser to browser, where benchmarks/voice_sync.py stops at
the server's output.

Needs Debian's chromium and chromium-driver (and selenium, in `[dev]`).

Run from the project root: python -m benchmarks.voice_sync_browser [--events 8]
[--render-ms 40 100 200]
"""

from __future__ import annotations

import argparse
import base64
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.voice_sync import event_options, pair
from benchmarks.webrtc_latency import PassThroughFactory, browser_available, chromium, wait_for_js

# The page's camera and microphone, replaced before it loads: one clock switches both.
FAKE_DEVICES = """
const PERIOD = %(period)f * 1000;
window.__start ??= performance.now() + 4000;
const on = (t) => t >= window.__start && (t - window.__start) %% PERIOD < PERIOD / 2;
navigator.mediaDevices.getUserMedia = async (wanted) => {
  if (wanted.video) {
    const canvas = document.createElement("canvas");
    canvas.width = 320; canvas.height = 240;
    const g = canvas.getContext("2d");
    let k = 0;
    setInterval(() => {
      g.fillStyle = "rgb(60,60,60)"; g.fillRect(0, 0, 320, 240);
      g.fillStyle = "rgb(90,90,90)"; g.fillRect((k++ * 3) %% 300, 10, 20, 20);  // moving
      if (on(performance.now())) { g.fillStyle = "rgb(250,250,250)"; g.fillRect(130, 90, 60, 60); }
    }, 10);
    return canvas.captureStream(30);
  }
  const context = new AudioContext({ sampleRate: 48000 });
  const hum = context.createOscillator();
  hum.frequency.value = 440;
  const gain = context.createGain();
  gain.gain.value = 0;
  const out = context.createMediaStreamDestination();
  hum.connect(gain).connect(out);
  hum.start();
  setInterval(() => { gain.gain.value = on(performance.now()) ? 0.5 : 0; }, 2);
  return out.stream;
};
"""

SAVE = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then((r) => r.blob()).then((blob) => {
  const reader = new FileReader();
  reader.onload = () => done(reader.result);
  reader.readAsDataURL(blob);
});
"""


def onsets(path: Path) -> tuple[list[float], list[float]]:
    """A recording's bright-centre onsets and hum onsets, seconds on its own timeline."""
    import av

    with av.open(str(path)) as container:
        video = []
        for frame in container.decode(video=0):
            grey = frame.to_ndarray(format="gray")
            h, w = grey.shape
            video.append((float(frame.time), grey[h // 2 - 20:h // 2 + 20,
                                                  w // 2 - 20:w // 2 + 20].mean() > 150))
    with av.open(str(path)) as container:
        audio = []
        for frame in container.decode(audio=0):
            peaks = np.abs(frame.to_ndarray()).max(axis=0)
            step = frame.sample_rate // 200  # 5 ms
            for i in range(0, len(peaks), step):
                audio.append((float(frame.time) + i / frame.sample_rate,
                              peaks[i:i + step].max() > 0.1))
    return _rises(video), _rises(audio)


def _rises(series: Sequence[tuple[float, bool]]) -> list[float]:
    return [t for (_, was), (t, now) in zip(series, series[1:], strict=False) if now and not was]


def measure(render_s: float, events: int, period: float) -> dict[str, list[float]]:
    """→ skews (s) in the /player tab's recording and in the page's own."""
    from selenium.webdriver.common.by import By

    from streamer.webrtc_server import ServerConfig, ServerThread

    server = ServerThread(ServerConfig(port=0), processors=PassThroughFactory(render_s))
    server.start()
    folder = Path(tempfile.mkdtemp(prefix="headcast-voice-sync-"))
    try:
        with chromium() as driver:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                   {"source": FAKE_DEVICES % {"period": period}})
            driver.get(f"{server.url}/?autostart=1")
            wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'", 30)
            page = driver.current_window_handle
            driver.find_element(By.ID, "record").click()
            driver.switch_to.new_window("tab")
            driver.get(f"{server.url}/player")
            wait_for_js(driver, "window.headcast && headcast.state.phase === 'live'", 30)
            driver.execute_script("import('/static/headcast.js').then((m) => {"
                                  " window.__rec = new m.Recorder(headcast.state.session.stream);"
                                  " });")
            wait_for_js(driver, "window.__rec", 10)
            player = driver.current_window_handle
            driver.switch_to.window(page)  # the events' clock
            end = (events + 0.5) * period * 1000
            wait_for_js(driver, f"performance.now() > window.__start + {end}", events * period + 30)
            driver.find_element(By.ID, "record").click()
            driver.switch_to.window(player)
            driver.execute_script("window.__rec.stop().then((r) => { window.__saved = r; })")
            urls = {"player": wait_for_js(driver, "window.__saved && window.__saved.url", 10)}
            driver.switch_to.window(page)
            urls["page"] = wait_for_js(
                driver, "headcast.state.recording && headcast.state.recording.url", 10)
            skews = {}
            for where, url in urls.items():
                driver.switch_to.window(player if where == "player" else page)
                data = driver.execute_async_script(SAVE, url)
                path = folder / f"{where}.webm"
                path.write_bytes(base64.b64decode(data.split(";base64,", 1)[1]))
                bright, hum = onsets(path)
                skews[where] = pair(bright, hum, period / 4)
    finally:
        server.close()
    return skews


def table(rows: Sequence[tuple[float, dict[str, list[float]]]]) -> str:
    lines = ["| render | recorded by | skew p50 | skew max abs | events |", "|---|---|---|---|---|"]
    for render_s, skews in rows:
        for where, label in (("player", "the `/player` page (a viewer)"),
                             ("page", "the sending page's Record")):
            skew = np.asarray(skews[where]) * 1000
            lines.append(f"| {render_s * 1000:.0f} ms | {label} | "
                         + (f"{np.median(skew):+.0f} ms | {np.abs(skew).max():.0f} ms"
                            if len(skew) else "— | —") + f" | {len(skew)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.voice_sync_browser",
                                     description=__doc__.split("\n\n")[0])
    event_options(parser, [40, 100, 200])
    args = parser.parse_args(argv)
    if not browser_available():
        print("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium "
              "chromium-driver) and selenium")
        return 2
    rows = [(ms / 1000, measure(ms / 1000, args.events, args.period)) for ms in args.render_ms]
    print("Voice vs avatar in Chromium recordings (skew = hum − bright frame; positive: the "
          "voice is late)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
