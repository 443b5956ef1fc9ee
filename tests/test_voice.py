"""--voice (streamer/voice.py): what a value names, a sound file as the microphone, and the
named error for a device that is not there."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from webrtc_utils import dominant_hz

from streamer.errors import VoiceUnavailableError
from streamer.voice import VoiceFeed, VoiceSpec, open_voice_feed, parse_voice

LINUX = frozenset({"alsa", "pulse", "mp4", "wav"})


def test_a_value_names_a_device_or_a_file(hum_wav: Path) -> None:
    assert parse_voice("alsa:hw:1", "linux", LINUX) == VoiceSpec("hw:1", "alsa")
    assert parse_voice("pulse:", "linux", LINUX) == VoiceSpec("default", "pulse")
    assert parse_voice(str(hum_wav), "linux", LINUX) == VoiceSpec(str(hum_wav), None)
    assert parse_voice("default", "linux", LINUX) == VoiceSpec("default", "pulse")
    assert parse_voice("default", "linux", frozenset({"alsa"})) == VoiceSpec("default", "alsa")
    assert parse_voice("default", "darwin", frozenset({"avfoundation"})) == VoiceSpec(
        ":0", "avfoundation")


def test_what_cannot_be_a_voice_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VoiceUnavailableError, match="cannot capture from 'dshow'"):
        parse_voice("dshow:audio=Mic", "linux", LINUX)
    with pytest.raises(VoiceUnavailableError, match="no such file"):
        parse_voice(str(tmp_path / "missing.wav"), "linux", LINUX)
    with pytest.raises(VoiceUnavailableError, match="dshow:audio=NAME"):
        parse_voice("default", "win32", frozenset({"dshow"}))


def test_a_sound_file_is_heard_in_real_time_by_every_listener(hum_wav: Path) -> None:
    feed = open_voice_feed(str(hum_wav))
    heard: list[tuple[np.ndarray, float]] = []
    also: list[float] = []
    try:
        feed.listen(lambda samples, arrived: heard.append((samples, arrived)))
        remove = feed.listen(lambda samples, arrived: also.append(arrived))
        time.sleep(0.6)
        remove()
        count = len(also)
        time.sleep(0.2)
        assert len(also) == count  # removed: hears no more
    finally:
        feed.close()
        feed.close()
    assert 15 <= count <= len(heard)
    samples = np.concatenate([s.reshape(-1, 2)[:, 0] for s, _ in heard]) / 32768.0
    assert abs(dominant_hz(samples) - 440) < 5
    arrivals = [at for _, at in heard]
    assert arrivals[-1] - arrivals[0] > 0.3  # as it plays, not all at once


def test_a_muted_voice_gives_silence_in_its_time(hum_wav: Path) -> None:
    feed = open_voice_feed(str(hum_wav))
    heard: list[tuple[float, np.ndarray]] = []
    # each chunk by when it was handed out, which is when the feed looked at `muted` (its
    # `arrived` is read from the media clock: on a loaded machine a chunk handed out late
    # still says it came before the mute)
    try:
        feed.listen(lambda samples, arrived: heard.append((time.monotonic(), samples)))
        time.sleep(0.3)
        assert feed.toggle_mute() is False  # muted now
        muted_at = time.monotonic()
        time.sleep(0.3)
        assert feed.toggle_mute() is True
        on_at = time.monotonic()
        time.sleep(0.3)
    finally:
        feed.close()
    peak = [(at, int(np.abs(s).max())) for at, s in heard]
    assert all(p > 1000 for at, p in peak if at < muted_at - 0.05)
    quiet = [p for at, p in peak if muted_at + 0.05 < at < on_at]
    assert len(quiet) >= 5 and max(quiet) == 0  # silence, every 20 ms all the same
    assert any(p > 1000 for at, p in peak if at > on_at + 0.05)


def test_a_sound_file_that_ends_says_so(tmp_path: Path) -> None:
    from webrtc_utils import write_wav

    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(4800))  # 0.1 s
    feed = open_voice_feed(str(short))
    try:
        feed.listen(lambda samples, arrived: None)  # a file plays from its first listener
        assert feed.ended.wait(5)
    finally:
        feed.close()


def test_a_sound_file_plays_from_its_first_listener(hum_wav: Path) -> None:
    """Opened 1 s before anyone listens (as the stream starts: the portraits, the models), a
    3 s file is still heard whole; it had played from its opening, so a recording started
    then kept its last 2 s."""
    feed = open_voice_feed(str(hum_wav))
    heard: list[np.ndarray] = []
    try:
        time.sleep(1.0)
        assert not feed.ended.is_set()
        feed.listen(lambda samples, arrived: heard.append(samples))
        assert feed.ended.wait(10)
    finally:
        feed.close()
    loud = sum(int(np.abs(s).max()) > 1000 for s in heard)
    assert loud >= 140, f"{loud * 0.02:.2f} s of the 3 s hum heard"


def test_a_device_that_is_not_there_is_a_named_error_and_holds_nothing() -> None:
    import threading

    import av

    if "alsa" not in av.formats_available:
        pytest.skip("this PyAV's FFmpeg has no ALSA capture")
    before = threading.active_count()
    with pytest.raises(VoiceUnavailableError, match="cannot open --voice alsa:hw:99"):
        VoiceFeed(VoiceSpec("hw:99", "alsa"))
    assert threading.active_count() == before


def test_stream_takes_a_voice_only_with_an_output_that_carries_sound(hum_wav: Path) -> None:
    from streamer.live_cli import _check_outputs

    _check_outputs(["preview", "webrtc"], str(hum_wav))
    _check_outputs(["webrtc", "whip:http://h/whip"], str(hum_wav))
    _check_outputs(["virtualcam"], str(hum_wav), record="me.mp4")
    with pytest.raises(VoiceUnavailableError, match="add --output webrtc or whip:URL, or --record"):
        _check_outputs(["virtualcam", "preview"], str(hum_wav))
    with pytest.raises(VoiceUnavailableError, match="no such file"):
        _check_outputs(["webrtc"], "nowhere.wav")


def test_the_command_lines_pass_the_voice_on(hum_wav: Path) -> None:
    import argparse
    from types import SimpleNamespace

    from streamer.live_cli import OUTPUT_OPTIONS, OutputContext, add_stream_command
    from streamer.webrtc_cli import add_client_command

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_stream_command(sub)
    add_client_command(sub)
    args = parser.parse_args(["stream", "--portrait", "p.png", "--output", "webrtc",
                              "--voice", str(hum_wav)])
    feed = object()  # what run_stream opens once, for every output that carries sound
    context = OutputContext(args, SimpleNamespace(recalibrate=lambda: None), None, feed)  # type: ignore[arg-type]
    assert OUTPUT_OPTIONS["webrtc"]("9000", context)["voice"] is feed
    assert OUTPUT_OPTIONS["whip"]("http://h/whip", context) == {
        "url": "http://h/whip", "voice": feed}
    assert OUTPUT_OPTIONS["record"]("me.mp4", context) == {"path": "me.mp4", "voice": feed}
    assert "voice" not in OUTPUT_OPTIONS["virtualcam"]("", context)
    args = parser.parse_args(["client", "--server", "http://127.0.0.1:9", "--voice",
                              "nowhere.wav"])
    with pytest.raises(VoiceUnavailableError, match="no such file"):
        args.func(args)  # refused before any connection is tried


class FakeMicrophone:
    """A Voice whose track gives `frames` 20 ms frames of a hum of `hz`, then stops (as an
    unplugged microphone's does)."""

    def __init__(self, frames: int, hz: float) -> None:
        from benchmarks.voice_sync import ToneTrack

        self.track = ToneTrack(hz)
        self.frames = frames
        recv = self.track.recv

        async def counted():  # type: ignore[no-untyped-def]
            from aiortc.mediastreams import MediaStreamError

            if self.frames == 0:
                raise MediaStreamError
            self.frames -= 1
            return await recv()

        self.track.recv = counted  # type: ignore[method-assign]
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_microphone_that_stops_is_reopened_until_it_is_back() -> None:
    """Unplugged after 10 frames, refused twice, then back: the listeners hear the first
    microphone, nothing while it is away, then the second; the feed never ends."""
    opened: list[FakeMicrophone] = []
    tries = {"n": 0}

    def opener(spec: VoiceSpec) -> FakeMicrophone:
        tries["n"] += 1
        if tries["n"] in (2, 3):
            raise VoiceUnavailableError("no such device")
        opened.append(FakeMicrophone(10 if not opened else 1000, 440 if not opened else 550))
        return opened[-1]

    heard: list[tuple[float, np.ndarray]] = []
    feed = VoiceFeed(VoiceSpec("hw:1", "alsa"), opener, reopen_s=0.05)  # type: ignore[arg-type]
    try:
        feed.listen(lambda samples, arrived: heard.append((arrived, samples)))
        deadline = time.monotonic() + 5
        while feed.reopened == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert not feed.ended.is_set()
    finally:
        feed.close()
    assert tries["n"] == 4 and feed.reopened == 1
    assert opened[0].closed >= 1 and opened[1].closed >= 1
    tones = [dominant_hz(s.reshape(-1, 2)[:, 0] / 32768.0) for _, s in heard]
    first = [hz for hz in tones if abs(hz - 440) < 60]
    second = [hz for hz in tones if abs(hz - 550) < 60]
    assert len(first) >= 8 and len(second) >= 5
    assert tones.index(second[0]) > len(first) - 1  # the second only after the first
    gap = heard[len(first)][0] - heard[len(first) - 1][0]
    assert gap >= 0.1  # two refused tries 50 ms apart, then the third
