"""Hotkeys of the preview window, mapped onto the pipeline's controls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Controllable(Protocol):
    """What hotkeys drive (streamer.pipeline.Pipeline is one). Every method is safe to call
    from any thread and returns at once; the change applies from the next frame on."""

    def recalibrate(self) -> None: ...

    def select_portrait(self, index: int) -> bool:
        """0-based; False (and no change) when there is no such portrait."""
        ...

    def toggle_head_pose(self) -> bool:
        """Returns the new state."""
        ...

    def toggle_mirror(self) -> bool:
        """Returns the new state."""
        ...

    def toggle_freeze(self) -> bool:
        """Returns the new state."""
        ...

    def stop(self) -> None: ...


Action = Callable[[Controllable], object]

ESC = 27


def _portrait(index: int) -> Action:
    return lambda target: target.select_portrait(index)


# Key code (8 bits, as cv2.waitKey() & 0xFF) → action. Lower and upper case alike.
KEYS: dict[int, tuple[str, Action]] = {
    ord("r"): ("recalibrate", lambda target: target.recalibrate()),
    ord("h"): ("head pose on/off", lambda target: target.toggle_head_pose()),
    ord("m"): ("mirror on/off", lambda target: target.toggle_mirror()),
    ord("f"): ("freeze on/off", lambda target: target.toggle_freeze()),
    ord(" "): ("freeze on/off", lambda target: target.toggle_freeze()),
    ord("q"): ("quit", lambda target: target.stop()),
    ESC: ("quit", lambda target: target.stop()),
    **{ord(str(n)): (f"portrait {n}", _portrait(n - 1)) for n in range(1, 10)},
}

HELP = "keys: r recalibrate · 1-9 portrait · h head pose · m mirror · f/space freeze · q/Esc quit"


VOICE_KEY = ord("v")  # --voice on/off, where there is one
VOICE_HELP = " · v voice"


class Controls:
    """Routes key codes to a Controllable; bind() it once the target exists (sinks are
    created before the pipeline they belong to). `voice`: what `v` toggles (the --voice's
    mute), where there is one."""

    def __init__(self, target: Controllable | None = None,
                 voice: Callable[[], bool] | None = None) -> None:
        self._target = target
        self._voice = voice

    def bind(self, target: Controllable) -> None:
        self._target = target

    def handle_key(self, key: int) -> bool:
        """Run the action bound to `key`; False for unbound keys or before bind()."""
        if 65 <= key <= 90:  # upper case letters act like lower case
            key += 32
        if key == VOICE_KEY and self._voice is not None:
            log.info("voice on/off: %s", self._voice())
            return True
        entry = KEYS.get(key)
        if entry is None or self._target is None:
            return False
        what, action = entry
        result = action(self._target)
        log.info("%s%s", what, "" if result is None else f": {result}")
        return True

    def quit(self) -> None:
        """Stop the target (the preview window was closed)."""
        if self._target is not None:
            self._target.stop()
