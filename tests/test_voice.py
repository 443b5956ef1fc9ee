"""--voice (streamer/voice.py): what a value names, a sound file as the microphone, and the
named error for a device that is not there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from webrtc_utils import dominant_hz

from streamer.errors import VoiceUnavailableError
from streamer.voice import Voice, VoiceSpec, open_voice, parse_voice

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


def test_a_sound_file_is_heard_in_real_time(hum_wav: Path) -> None:
    voice = open_voice(str(hum_wav))

    async def read(count: int) -> list:  # type: ignore[type-arg]
        try:
            return [await voice.track.recv() for _ in range(count)]
        finally:
            voice.close()  # on the loop: the player's thread hands frames to it
            voice.close()

    start = time.monotonic()
    frames = asyncio.run(read(25))
    assert time.monotonic() - start > 0.3  # 25 frames of 20 ms: read as it plays, not at once
    samples = np.concatenate(
        [f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0] for f in frames]) / 32768.0
    rate = frames[0].sample_rate
    assert rate == 48_000 and abs(dominant_hz(samples, rate) - 440) < 5
    span = (frames[-1].pts - frames[0].pts) * frames[0].time_base
    assert 0.2 < span < 1.0


def test_a_device_that_is_not_there_is_a_named_error() -> None:
    import av

    if "alsa" not in av.formats_available:
        pytest.skip("this PyAV's FFmpeg has no ALSA capture")
    with pytest.raises(VoiceUnavailableError, match="cannot open --voice alsa:hw:99"):
        Voice(VoiceSpec("hw:99", "alsa"))


def test_stream_takes_a_voice_only_with_one_output_that_carries_sound(hum_wav: Path) -> None:
    from streamer.live_cli import _check_outputs

    _check_outputs(["preview", "webrtc"], str(hum_wav))
    _check_outputs(["whip:http://h/whip"], str(hum_wav))
    with pytest.raises(VoiceUnavailableError, match="add --output webrtc"):
        _check_outputs(["virtualcam", "preview"], str(hum_wav))
    with pytest.raises(VoiceUnavailableError, match="choose one of webrtc, whip"):
        _check_outputs(["webrtc", "whip:http://h/whip"], str(hum_wav))
    with pytest.raises(VoiceUnavailableError, match="no such file"):
        _check_outputs(["webrtc"], "nowhere.wav")


def test_the_command_lines_pass_the_voice_on(hum_wav: Path) -> None:
    import argparse
    from types import SimpleNamespace

    from streamer.live_cli import _webrtc_options, _whip_options, add_stream_command
    from streamer.webrtc_cli import add_client_command

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_stream_command(sub)
    add_client_command(sub)
    args = parser.parse_args(["stream", "--portrait", "p.png", "--output", "webrtc",
                              "--voice", str(hum_wav)])
    pipeline = SimpleNamespace(recalibrate=lambda: None)
    spec = VoiceSpec(str(hum_wav), None)
    assert _webrtc_options("9000", args, pipeline, None)["voice"] == spec  # type: ignore[arg-type]
    assert _whip_options("http://h/whip", args, pipeline, None) == {  # type: ignore[arg-type]
        "url": "http://h/whip", "voice": spec}
    args = parser.parse_args(["client", "--server", "http://127.0.0.1:9", "--voice",
                              "nowhere.wav"])
    with pytest.raises(VoiceUnavailableError, match="no such file"):
        args.func(args)  # refused before any connection is tried


@pytest.fixture
def serve_url():  # type: ignore[no-untyped-def]
    from webrtc_utils import FakeFactory

    from streamer.webrtc_server import ServerConfig, ServerThread

    server = ServerThread(ServerConfig(port=0), processors=FakeFactory())
    server.start()
    yield f"{server.url}/whip"
    server.close()


def test_an_output_whose_voice_cannot_be_opened_says_so_and_holds_nothing(
    serve_url: str,
) -> None:
    """`stream --output webrtc|whip:URL --voice MIC` with a microphone that is not there: the
    output is not opened, VoiceUnavailableError says why, no thread or port stays behind."""
    import threading

    import av

    from streamer.webrtc_client import whip_sink
    from streamer.webrtc_server import webrtc_sink

    if "alsa" not in av.formats_available:
        pytest.skip("this PyAV's FFmpeg has no ALSA capture")
    missing = VoiceSpec("hw:99", "alsa")
    before = threading.active_count()
    for sink in (webrtc_sink(port=0, voice=missing), whip_sink(serve_url, voice=missing)):
        with pytest.raises(VoiceUnavailableError, match="alsa:hw:99"):
            sink.open(64, 64, 25.0)
        sink.close()
    assert threading.active_count() == before
