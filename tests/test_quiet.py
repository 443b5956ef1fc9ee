"""stderr_silenced: MediaPipe's chatter kept off the terminal, everything else let through."""

from __future__ import annotations

import os
import threading
import time

from streamer.quiet import stderr_silenced


def test_chatter_is_left_out_and_the_rest_written_after(capfd) -> None:
    with stderr_silenced():
        os.write(2, b"W0000 00:00:1796687793.664145   11391 inference_feedback_manager.cc:114]"
                    b" Feedback manager requires a model with a single signature inference.\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"headcast: the camera stopped\n")
        os.write(2, b"WARNING:root:a warning in Python's own format\n")
        assert capfd.readouterr().err == ""  # nothing while the window is open
    assert capfd.readouterr().err == (
        "headcast: the camera stopped\nWARNING:root:a warning in Python's own format\n")


def test_another_threads_line_in_the_window_is_not_lost(capfd) -> None:
    """A `serve` session starting silences fd 2 for ~40 ms (the first for ~0.9 s): another
    session's log line written then had gone to /dev/null."""
    inside = threading.Event()
    written = threading.Event()

    def other() -> None:
        inside.wait(5)
        os.write(2, b"headcast: session 2 closed\n")
        written.set()

    thread = threading.Thread(target=other)
    thread.start()
    with stderr_silenced():
        inside.set()
        written.wait(5)
    thread.join()
    assert capfd.readouterr().err == "headcast: session 2 closed\n"


def test_windows_on_two_threads_at_once_give_fd_2_back(capfd) -> None:
    """Each window saved fd 2 and pointed it at /dev/null: a second thread's window opened
    inside the first saved /dev/null, and put it back last, for good."""
    def windows() -> None:
        for _ in range(20):
            with stderr_silenced():
                time.sleep(0.002)
            time.sleep(0.001)

    threads = [threading.Thread(target=windows) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_a_window_inside_a_window(capfd) -> None:
    with stderr_silenced():
        with stderr_silenced():
            os.write(2, b"I0000 00:00:1.5 inner.cc:1] chatter\nkept inner\n")
        os.write(2, b"kept outer\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept inner\nkept outer\nafter\n"
