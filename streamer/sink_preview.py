"""The preview window: shows the avatar, reads hotkeys, draws the stats overlay."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import SinkUnavailableError
from streamer.frames import Frame


@dataclass(frozen=True)
class PreviewConfig:
    title: str = "headcast"  # window title
    overlay_refresh_s: float = 0.5  # how often the overlay text is asked for again


def check_display() -> None:
    """Raise SinkUnavailableError when no window can be shown (Linux without X/XWayland)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise SinkUnavailableError(
            "no display for the preview window (DISPLAY is not set): run from a desktop "
            "session, or leave 'preview' out of --output"
        )


class PreviewSink:
    """An OpenCV window. Key presses go to on_key(key) (an 8-bit key code, see
    streamer.controls); closing the window calls on_close(). With `overlay`, the lines it
    returns are drawn on the shown frame (never on the frames other sinks get)."""

    name = "preview"
    main_thread = True  # GUI calls must come from the main thread on macOS: Pipeline.run()

    def __init__(
        self,
        config: PreviewConfig = PreviewConfig(),
        on_key: Callable[[int], object] | None = None,
        overlay: Callable[[], Sequence[str]] | None = None,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._config = config
        self._on_key = on_key
        self._overlay = overlay
        self._on_close = on_close
        self._open = False
        self._shown = False
        self._lines: Sequence[str] = ()
        self._lines_at = -float("inf")

    def open(self, width: int, height: int, fps: float) -> None:
        check_display()
        try:
            cv2.namedWindow(self._config.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(self._config.title, width, height)
        except cv2.error as exc:
            raise SinkUnavailableError(
                "cannot open the preview window: this OpenCV has no GUI support "
                f"(pip install opencv-contrib-python, not a -headless build) [{exc.err}]"
            ) from exc
        self._open = True

    def send(self, frame: Frame) -> None:
        image = frame.image
        lines = self._overlay_lines()
        if lines:
            image = draw_lines(image.copy(), lines)
        cv2.imshow(self._config.title, image)
        self._shown = True
        self.poll()

    def poll(self) -> None:
        """Pump window events and dispatch a pressed key; called between frames too."""
        key = cv2.waitKey(1)
        if key != -1 and self._on_key is not None:
            self._on_key(key & 0xFF)
        if self._shown and self._window_closed() and self._on_close is not None:
            self._shown = False
            self._on_close()

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self._config.title)
                cv2.waitKey(1)
            except cv2.error:
                pass  # already closed by the user

    def _window_closed(self) -> bool:
        try:
            return cv2.getWindowProperty(self._config.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def _overlay_lines(self) -> Sequence[str]:
        now = time.monotonic()
        if self._overlay is not None and now - self._lines_at >= self._config.overlay_refresh_s:
            self._lines, self._lines_at = self._overlay(), now
        return self._lines


def draw_lines(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Draw text lines top-left on `image` (in place), white on a dark outline; returns it.
    The text grows with the image's height and shrinks to fit its width (a portrait-shaped
    avatar is narrow)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    widest = max((cv2.getTextSize(line, font, 1.0, 1)[0][0] for line in lines), default=1)
    scale = min(max(0.4, image.shape[0] / 1000), (image.shape[1] - 16) / max(widest, 1))
    step = int(22 * scale / 0.5)
    for i, line in enumerate(lines):
        org = (8, step * (i + 1))
        cv2.putText(image, line, org, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, line, org, font, scale, (255, 255, 255), 1)
    return image
