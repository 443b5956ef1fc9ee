"""MediaPipe's C++ start-up chatter kept off the terminal, and nothing else with it."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# A line of MediaPipe's, TF Lite's or absl's own: absl's "W0000 00:00:1796687793.664145 11391
# file.cc:114] …", TF Lite's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." and
# absl's "WARNING: All log messages before absl::InitializeLog() …". headcast's own lines
# start "headcast: ", and Python's default logging format has no space after its colon.
CHATTER = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |(?:INFO|WARNING|ERROR): )")

# One window at a time: two threads (two `serve` sessions starting) that each saved fd 2 and
# pointed it elsewhere would leave it pointing at the first one's file for good.
_LOCK = threading.RLock()


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at a file of its own for a moment: MediaPipe's start-up
    chatter is written there by C++, past Python's sys.stderr. What else was written to it
    meanwhile (another thread's log line) is written on to stderr after, the chatter left
    out (CHATTER)."""
    with _LOCK, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(held.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not CHATTER.match(line)]
            if kept:
                os.write(2, b"".join(kept))
