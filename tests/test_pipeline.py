"""Pipeline: fan-out, newest-wins under slow stages, failures, controls, hotkeys, the CLI."""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pytest
from fakes import (
    FakeProcessor,
    FakeSink,
    FakeStagedProcessor,
    fake_camera,
    image_number,
    numbered_image,
    write_clip,
)

from streamer import live_cli
from streamer.controls import Controls
from streamer.errors import SinkUnavailableError, SourceLostError
from streamer.pipeline import Pipeline, PipelineConfig, PipelineStats
from streamer.sinks import register_sink
from streamer.slow_hint import SlowHint
from streamer.sources import CaptureConfig, OpenCVReader, ThreadedSource
from streamer.video_io import read_timed_frames, read_video_frames
from tests.helpers import wait_until


def live_threads() -> set[str]:
    return {
        t.name for t in threading.enumerate() if t.name.startswith(("capture:", "sink:", "pipe"))
    }


def test_frames_reach_every_sink_with_their_capture_time():
    source, _ = fake_camera(fps=60.0)
    a, b = FakeSink("a"), FakeSink("b")
    processor = FakeProcessor(size=96)
    with Pipeline(source, processor, [a, b]) as pipeline:
        pipeline.run(duration=0.8)
    stats = pipeline.stats()  # after close: every counter is final
    for sink in (a, b):
        assert sink.opened == [(96, 96, 60.0)]  # opened once, at the processor's output size
        indices = [r.index for r in sink.received]
        assert len(indices) > 10 and indices == sorted(set(indices))
        assert all(r.capture_ts < r.received_ts for r in sink.received)
        assert all(r.number == r.index % 256 for r in sink.received)  # the right frame
        assert sink.closed == 1
    assert stats.processed >= len(a.received)
    assert stats.process is not None and stats.wait is not None
    assert {s.name for s in stats.sinks} == {"a", "b"}
    assert all(s.latency is not None and s.delivered > 10 for s in stats.sinks)
    assert len(stats.lines()) == 4
    assert processor.closed == 1
    assert live_threads() == set()


def test_a_slow_sink_never_slows_the_others():
    source, _ = fake_camera(fps=30.0)
    fast, slow = FakeSink("fast"), FakeSink("slow", delay_s=0.25)
    with Pipeline(source, FakeProcessor(), [fast, slow]) as pipeline:
        pipeline.run(duration=2.0)
    stats = pipeline.stats()
    # the fast sink gets (nearly) every processed frame, the slow one only a few
    assert len(fast.received) >= 0.8 * stats.processed
    assert len(slow.received) <= 10
    slow_stats = next(s for s in stats.sinks if s.name == "slow")
    assert slow_stats.dropped > 20
    # and the slow sink still shows fresh frames: latency bounded by its own send time,
    # not growing with a backlog
    lags = [r.received_ts - r.capture_ts for r in slow.received]
    assert max(lags) < 0.25 + 0.5
    assert lags[-1] < lags[0] + 0.3


def test_a_slow_processor_drops_frames_instead_of_queueing_them():
    source, _ = fake_camera(fps=60.0)
    sink = FakeSink()
    with Pipeline(source, FakeProcessor(delay_s=0.05), [sink]) as pipeline:
        pipeline.run(duration=1.5)
        stats = pipeline.stats()
    assert stats.offered > stats.processed * 1.5  # frames were skipped, not queued
    waits = [r.received_ts - r.capture_ts for r in sink.received]
    first, last = np.median(waits[:5]), np.median(waits[-5:])
    assert last < first + 0.1  # latency does not grow with time
    assert stats.wait.p95_ms < 200  # a frame waits at most ~one processing time


def test_main_thread_sinks_are_driven_by_run_on_the_calling_thread():
    source, _ = fake_camera(fps=60.0)
    window, other = FakeSink("window", main_thread=True), FakeSink("other")
    broken = FakeSink("broken window", main_thread=True, unavailable=True)
    with Pipeline(source, FakeProcessor(), [window, broken, other]) as pipeline:
        pipeline.run(duration=0.5)
    assert len(window.received) > 10
    assert window.threads == {threading.get_ident()}
    assert other.threads and threading.get_ident() not in other.threads
    assert window.closed == 1 and broken.closed >= 1


@pytest.mark.parametrize("make", [FakeProcessor, FakeStagedProcessor])
def test_a_camera_that_disappears_ends_the_run_with_source_lost(make):
    source, _ = fake_camera(fps=60.0, fail_after=20, lost_after_s=0.2)
    sink = FakeSink()
    with Pipeline(source, make(), [sink]) as pipeline:
        with pytest.raises(SourceLostError):
            pipeline.run(duration=10.0)
        assert isinstance(pipeline.error, SourceLostError)
    assert sink.received and sink.received[-1].index <= 19
    assert live_threads() == set()


@pytest.mark.parametrize("make", [FakeProcessor, FakeStagedProcessor])
def test_while_the_camera_is_away_the_outputs_keep_going(make):
    """The camera stops after 40 frames and comes back on its 10th reopen (50 ms apart): once
    it counts as lost, the pipeline drives the processor with black (faceless) frames at the
    camera's rate, so no output waits longer than lost_after_s; then camera frames again."""
    source, reader = fake_camera(fps=60.0, fail_after=40, lost_after_s=0.2, camera_wait_s=5.0,
                                 back_after_reopens=10)
    sink = FakeSink()
    with Pipeline(source, make(), [sink]) as pipeline:
        pipeline.run(duration=2.0)
        assert pipeline.error is None
    assert reader.reopens == 10
    numbers = [r.number for r in sink.received]
    idle = [i for i, r in enumerate(sink.received) if r.index >= 40 and r.number == 0]
    back = [i for i, r in enumerate(sink.received) if r.number > 40]
    assert len(idle) >= 15 and back and idle[0] < back[0], numbers
    arrivals = [r.received_ts for r in sink.received]
    assert max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) < 0.35
    assert live_threads() == set()


def test_status_lines_say_when_the_camera_is_away():
    source, _ = fake_camera(fps=60.0, fail_after=10, lost_after_s=0.1, camera_wait_s=5.0)
    with Pipeline(source, FakeProcessor(), [FakeSink()]) as pipeline:
        pipeline.start()
        assert pipeline.status_lines() == []  # the fake processor waits for nothing
        deadline = time.monotonic() + 5.0
        while not source.waiting and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pipeline.status_lines() == [
            "fake camera stopped: reopening it"]


def test_while_the_camera_is_away_the_avatar_rests(astronaut_bgr):
    """The real Animator on the astronaut, who stands in for the camera: while the camera is
    away its faceless frames rest the avatar, which keeps coming (not black), and follows the
    face again once the camera is back."""
    from streamer.animate import AnimateOptions, Animator
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import RendererConfig

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))
    options = AnimateOptions(full_frame=False, renderer=RendererConfig(name="warp"))
    source, reader = fake_camera(fps=30.0, fail_after=15, lost_after_s=0.2, camera_wait_s=5.0,
                                 back_after_reopens=8, image=astronaut_bgr)
    sink = FakeSink()
    with Pipeline(source, Animator(portrait, options), [sink]) as pipeline:
        pipeline.run(duration=2.0)
        assert pipeline.error is None
    assert reader.reopens == 8
    arrivals = [r.received_ts for r in sink.received]
    assert max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) < 0.4
    # 60 in 2 s on an idle machine, 12 at a load of 14 on two cores: frames kept coming
    assert len(sink.received) >= 10 and all(image.mean() > 50 for image in sink.images)


def test_an_unavailable_sink_is_logged_and_the_others_go_on(caplog):
    source, _ = fake_camera(fps=60.0)
    missing, good = FakeSink("missing", unavailable=True), FakeSink("good")
    with Pipeline(source, FakeProcessor(), [missing, good]) as pipeline:
        pipeline.run(duration=0.6)
        stats = pipeline.stats()
    assert good.received and not missing.received
    state = {s.name: s for s in stats.sinks}
    assert state["missing"].state == "failed"
    assert "install the fake driver" in state["missing"].error
    assert "install the fake driver" in caplog.text


def test_an_output_lost_mid_stream_is_said_to_be_gone_and_the_others_go_on(caplog):
    source, _ = fake_camera(fps=60.0)
    gone, good = FakeSink("gone", gone_at=5), FakeSink("good")
    with Pipeline(source, FakeProcessor(), [gone, good]) as pipeline:
        pipeline.run(duration=0.6)
    assert len(gone.received) == 5 and len(good.received) > 10
    assert "output gone is unavailable: gone: the device went away" in caplog.text
    assert "going on without gone, with good" in caplog.text


def test_when_no_sink_can_be_opened_the_run_fails_with_every_reason(caplog):
    source, _ = fake_camera(fps=60.0)
    sinks = [FakeSink("one", unavailable=True), FakeSink("two", unavailable=True)]
    with (
        Pipeline(source, FakeProcessor(), sinks) as pipeline,
        pytest.raises(SinkUnavailableError, match="^no output could be opened. one: .*two: "),
    ):
        pipeline.run(duration=5.0)
    # each is said to be unavailable, and not that the stream goes on without it (it stops)
    assert caplog.text.count("is unavailable") == 2 and "going on" not in caplog.text


def test_when_the_last_output_is_lost_mid_stream_the_run_says_every_output_stopped():
    """One that had taken frames (a recording whose disk filled) is not said to be one that
    could not be opened."""
    source, _ = fake_camera(fps=60.0)
    sinks = [FakeSink("one", unavailable=True), FakeSink("two", gone_at=5)]
    with (
        Pipeline(source, FakeProcessor(), sinks) as pipeline,
        pytest.raises(SinkUnavailableError,
                      match="^every output has stopped. one: .*two: the device went away"),
    ):
        pipeline.run(duration=5.0)


@pytest.mark.parametrize(
    ("processor", "message"),
    [(lambda: FakeProcessor(fail_at=3), "fake processor failed"),
     (lambda: FakeStagedProcessor(fail_finish_at=3), "fake finish failed")],
    ids=["one worker", "second half"],
)
def test_a_processor_error_ends_the_run(processor, message):
    source, _ = fake_camera(fps=60.0)
    with (
        Pipeline(source, processor(), [FakeSink()]) as pipeline,
        pytest.raises(RuntimeError, match=message),
    ):
        pipeline.run(duration=5.0)
    assert live_threads() == set()


def test_controls_reach_the_processor_on_its_own_thread():
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    portraits = ["mona", "einstein"]
    config = PipelineConfig(head_pose=False)
    with Pipeline(source, processor, [FakeSink()], config, portraits) as pipeline:
        pipeline.start()
        time.sleep(0.2)
        pipeline.recalibrate()
        assert pipeline.select_portrait(1)
        assert not pipeline.select_portrait(5)
        assert pipeline.toggle_head_pose() is True
        time.sleep(0.2)
        pipeline.stop()
    assert processor.recalibrations == 1
    assert processor.portraits == [("avatar", "einstein")]
    assert processor.pose_transfer == [False, True]  # the config's, then the toggle
    assert pipeline.portrait_index == 1
    assert len(processor.threads) == 1 and threading.get_ident() not in processor.threads


def test_a_portrait_is_made_ready_beside_the_frames_and_swapped_in_between_them():
    """The slow part of a switch (make_avatar: most of a second for the Animator, a frozen
    stream when the worker did it) runs on a thread of its own: frames go on while it works,
    with the portrait they had, and the worker then sets what it made."""
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    processor.avatar_gate = threading.Event()
    with Pipeline(source, processor, [FakeSink()], portraits=["mona", "einstein"]) as pipeline:
        pipeline.start()
        assert pipeline.select_portrait(1)
        assert wait_until(lambda: processor.avatar_threads != set())
        calls = processor.calls
        assert wait_until(lambda: processor.calls > calls + 10)  # not held up by the switch
        assert processor.portraits == []
        processor.avatar_gate.set()
        assert wait_until(lambda: processor.portraits == [("avatar", "einstein")])
        assert pipeline.error is None
    assert processor.avatar_threads.isdisjoint(processor.threads | {threading.get_ident()})
    assert live_threads() == set()


def test_a_later_selection_makes_an_earlier_one_moot():
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    processor.avatar_gate = threading.Event()
    portraits = ["a", "b", "c"]
    with Pipeline(source, processor, [FakeSink()], portraits=portraits) as pipeline:
        pipeline.start()
        pipeline.select_portrait(1)  # being made (waits for the gate) when the next come
        assert wait_until(lambda: processor.avatar_threads != set())
        pipeline.select_portrait(2)  # skipped: another came before it was begun
        pipeline.select_portrait(0)
        processor.avatar_gate.set()
        assert wait_until(lambda: processor.portraits == [("avatar", "a")])
        time.sleep(0.2)
    assert processor.portraits == [("avatar", "a")]  # b, made, was kept from the worker
    assert pipeline.portrait_index == 0


def test_a_portrait_that_cannot_be_made_ready_leaves_the_avatar_as_it_was(caplog):
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    processor.unusable = "broken"
    with Pipeline(source, processor, [FakeSink()], portraits=["a", "broken"]) as pipeline:
        pipeline.start()
        pipeline.select_portrait(1)
        assert wait_until(lambda: "portrait 2 could not be shown" in caplog.text)
        calls = processor.calls
        assert wait_until(lambda: processor.calls > calls + 5)  # the stream goes on
        pipeline.select_portrait(0)
        assert wait_until(lambda: processor.portraits == [("avatar", "a")])
        assert pipeline.error is None
    assert "cannot be made ready" in caplog.text


def _overlapping(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> int:
    return sum(1 for s0, e0 in a for s1, e1 in b if s0 < e1 and s1 < e0)


@pytest.mark.parametrize("overlap", [True, False])
def test_a_staged_processor_prepares_the_next_frame_while_it_finishes_one(overlap):
    source, _ = fake_camera(fps=60.0)
    sink = FakeSink()
    processor = FakeStagedProcessor(prepare_s=0.02, finish_s=0.02)
    config = PipelineConfig(overlap=overlap)
    with Pipeline(source, processor, [sink], config) as pipeline:
        pipeline.run(duration=0.8)
    numbers = [r.number for r in sink.received]
    assert len(numbers) > 5 and numbers == sorted(set(numbers))  # in order, none twice
    both = processor.prepare_threads | processor.finish_threads
    assert len(processor.prepare_threads) == len(processor.finish_threads) == 1
    assert threading.get_ident() not in both
    overlaps = _overlapping(processor.spans["prepare"], processor.spans["finish"])
    if overlap:
        assert processor.prepare_threads != processor.finish_threads
        assert overlaps > 3
    else:
        assert processor.prepare_threads == processor.finish_threads
        assert overlaps == 0
    assert live_threads() == set()


def test_a_staged_processor_switches_portrait_only_between_frames():
    source, _ = fake_camera(fps=60.0)
    processor = FakeStagedProcessor(prepare_s=0.005, finish_s=0.02)
    with Pipeline(source, processor, [FakeSink()], portraits=["a", "b"]) as pipeline:
        pipeline.start()
        for i in range(10):
            time.sleep(0.03)
            pipeline.select_portrait(i % 2)
        time.sleep(0.1)
        pipeline.stop()
    assert pipeline.error is None  # set_portrait raises with a frame in flight
    assert len(processor.portraits) >= 5


def test_mirror_flips_the_driving_frame():
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    with Pipeline(source, processor, [FakeSink()], PipelineConfig(mirror=True)) as pipeline:
        pipeline.run(duration=0.3)
        mirrored = processor.inputs[-1]
        assert mirrored[:, -1].max() == 0  # numbered_image's black quarter is now on the right
        assert pipeline.toggle_mirror() is False


@pytest.mark.parametrize("make", [FakeProcessor, FakeStagedProcessor])
def test_freeze_repeats_the_last_avatar_frame_with_fresh_timestamps(make):
    source, _ = fake_camera(fps=60.0)
    sink = FakeSink()
    processor = make()
    with Pipeline(source, processor, [sink]) as pipeline:
        pipeline.start()
        time.sleep(0.3)
        assert pipeline.toggle_freeze() is True
        time.sleep(0.1)
        calls, count = processor.calls, len(sink.received)
        time.sleep(0.4)
        frozen = sink.received[count:]
        pipeline.stop()
    assert processor.calls <= calls + 1  # nothing processed while frozen
    assert len(frozen) > 5
    assert len({r.number for r in frozen}) == 1  # the same picture…
    assert frozen[-1].capture_ts > frozen[0].capture_ts  # …with new capture times


def test_output_size_changes_are_passed_on():
    """A portrait switch may change the output size; sinks get what the processor makes."""
    source, _ = fake_camera(fps=60.0)
    sink = FakeSink()
    processor = FakeProcessor(size=64)
    with Pipeline(source, processor, [sink]) as pipeline:
        pipeline.run(duration=0.3)
    assert sink.received[0].shape == (64, 64, 3)


def test_close_is_idempotent_and_joins_every_thread():
    source, reader = fake_camera(fps=60.0)
    pipeline = Pipeline(source, FakeProcessor(), [FakeSink()])
    pipeline.start()
    time.sleep(0.1)
    pipeline.close()
    pipeline.close()
    assert live_threads() == set()
    assert reader.closed == 1


# --- hotkeys ------------------------------------------------------------------------------


class Target:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def recalibrate(self) -> None:
        self.calls.append("recalibrate")

    def select_portrait(self, index: int) -> bool:
        self.calls.append(index)
        return True

    def toggle_head_pose(self) -> bool:
        self.calls.append("pose")
        return False

    def toggle_mirror(self) -> bool:
        self.calls.append("mirror")
        return True

    def toggle_freeze(self) -> bool:
        self.calls.append("freeze")
        return True

    def stop(self) -> None:
        self.calls.append("stop")


def test_hotkeys_drive_the_controls():
    target = Target()
    controls = Controls()
    assert not controls.handle_key(ord("r"))  # not bound yet
    controls.bind(target)
    for key in "rR19hmf q":
        controls.handle_key(ord(key))
    assert not controls.handle_key(ord("z"))
    controls.handle_key(27)
    assert target.calls == [
        "recalibrate",
        "recalibrate",
        0,
        8,
        "pose",
        "mirror",
        "freeze",
        "freeze",
        "stop",
        "stop",
    ]


def test_v_turns_the_voice_off_and_on_where_there_is_one():
    target = Target()
    assert not Controls(target).handle_key(ord("v"))  # no --voice: unbound
    state = {"on": True}

    def toggle() -> bool:
        state["on"] = not state["on"]
        return state["on"]

    controls = Controls(target, toggle)
    assert controls.handle_key(ord("v")) and state["on"] is False
    assert controls.handle_key(ord("V")) and state["on"] is True
    assert target.calls == []


def test_hotkeys_work_on_a_running_pipeline():
    source, _ = fake_camera(fps=60.0)
    processor = FakeProcessor()
    with Pipeline(source, processor, [FakeSink()], portraits=["a", "b"]) as pipeline:
        controls = Controls(pipeline)
        pipeline.start()
        controls.handle_key(ord("2"))
        controls.handle_key(ord("m"))
        time.sleep(0.2)
        controls.handle_key(ord("q"))
        pipeline.run()  # returns at once: q stopped it
    assert processor.portraits == [("avatar", "b")] and pipeline.mirror


# --- the CLI ------------------------------------------------------------------------------


def stream_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headcast")
    live_cli.add_stream_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["stream", *argv])


def test_stream_arguments_and_defaults():
    args = stream_args("--portrait", "a.jpg", "b.headcast")
    assert args.func is live_cli.run_stream
    assert args.portrait == ["a.jpg", "b.headcast"] and args.camera == "0"
    assert args.output is None and args.size == (1280, 720) and args.fit == "letterbox"
    assert args.renderer == "auto" and args.precision == "int8"  # live: the quantized generator
    assert args.no_overlap is False
    args = stream_args(
        "--portrait",
        "a.jpg",
        "--output",
        "whip:http://h/whip",
        "preview",
        "--size",
        "640x360",
        "--fit",
        "crop",
        "--no-head-pose",
        "--mirror",
        "--no-overlap",
    )
    assert args.output == ["whip:http://h/whip", "preview"] and args.size == (640, 360)
    assert args.no_overlap and args.mirror and args.no_head_pose
    with pytest.raises(SystemExit):
        stream_args("--portrait", "a.jpg", "--size", "big")


def test_stream_waits_for_its_camera_as_long_as_asked(monkeypatch):
    opened = []
    monkeypatch.setattr(live_cli, "CameraSource", lambda camera, config: opened.append(
        (camera, config.camera_wait_s)))
    for argv, wait in (((), 300.0), (("--camera-wait", "0"), 0.0), (("--camera-wait", "20"), 20.0)):
        args = stream_args("--portrait", "a.jpg", "--camera", "2", *argv)
        live_cli.open_source(args.driving, args.camera, args.camera_wait)
        assert opened[-1] == (2, wait)


@pytest.mark.parametrize(("output", "message"), [("nope", "unknown output 'nope'"),
                                               ("record", "record:OUT.mp4")])
def test_stream_with_a_bad_output_fails_before_loading(monkeypatch, output, message):
    monkeypatch.setattr(live_cli, "load_portraits", lambda paths: pytest.fail("loaded"))
    with pytest.raises(SinkUnavailableError, match=message):
        live_cli.run_stream(stream_args("--portrait", "a.jpg", "--output", output))


def test_stream_refuses_one_output_twice_before_loading(monkeypatch, tmp_path):
    """`--output record:X --record X` had two writers in one file: 599 frames in its header,
    55 readable."""
    monkeypatch.setattr(live_cli, "load_portraits", lambda paths: pytest.fail("loaded"))
    out = tmp_path / "x.mp4"
    for extra in (("--output", f"record:{out}", "--record", str(out)),
                  ("--output", f"record:{out}", f"record:{tmp_path}/./x.mp4"),
                  ("--output", "preview", "webrtc", "preview")):
        with pytest.raises(SinkUnavailableError, match="twice"):
            live_cli.run_stream(stream_args("--portrait", "a.jpg", *extra))


@pytest.mark.parametrize("overlap", [True, False])
def test_stream_records_a_clip_end_to_end(tmp_path, monkeypatch, overlap):
    clip = write_clip(tmp_path / "in.mp4", frames=10, fps=10.0, size=(64, 48))
    out = tmp_path / "out.mp4"
    sinks: list[FakeSink] = []
    register_sink("fake-cli", lambda **kw: sinks.append(FakeSink("fake-cli")) or sinks[-1])
    monkeypatch.setattr(live_cli, "load_portraits", lambda paths: list(paths))
    processor = FakeStagedProcessor(96)
    monkeypatch.setattr(live_cli, "make_processor", lambda *a, **kw: processor)
    args = stream_args(
        "--portrait",
        "p.jpg",
        "--driving",
        str(clip),
        "--output",
        "fake-cli",
        "--record",
        str(out),
        "--duration",
        "2.05",
        "--stats",
        *([] if overlap else ["--no-overlap"]),
    )
    assert live_cli.run_stream(args) == 0
    # --no-overlap: both halves on one worker; by default on two
    assert (processor.prepare_threads != processor.finish_threads) is overlap
    frames = list(read_video_frames(out))
    # real time at the clip's 10 fps: each frame at its slot, one per 0.1 s, the one before
    # held over the skipped ones
    times = [t for _, t in read_timed_frames(out)]
    assert all(abs(t * 10 - round(t * 10)) < 1e-3 for t in times) and times == sorted(times)
    assert 15 <= round(times[-1] * 10) + 1 <= 23
    assert frames[0].shape == (96, 96, 3)


@pytest.mark.parametrize("delivered", [False, True])
def test_stream_stopped_before_its_first_frame_says_nothing_was_recorded(
        tmp_path, monkeypatch, capsys, delivered):
    """Ctrl+C before any output got a frame (a loaded machine took 36 s to start) exited 0
    and said nothing, its --record never written; after, Ctrl+C is the normal stop."""
    clip = write_clip(tmp_path / "in.mp4", frames=10, fps=10.0, size=(64, 48))
    monkeypatch.setattr(live_cli, "load_portraits", lambda paths: list(paths))
    monkeypatch.setattr(live_cli, "make_processor", lambda *a, **kw: FakeStagedProcessor(96))
    runs = Pipeline.run

    def interrupted(self, *args, **kwargs):
        if delivered:
            runs(self, duration=1.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "run", interrupted)
    out = tmp_path / "out.mp4"
    args = stream_args("--portrait", "p.jpg", "--driving", str(clip), "--record", str(out))
    assert live_cli.run_stream(args) == (0 if delivered else 130)
    said = "stopped before the first avatar frame: no output got a frame, nothing was recorded"
    assert (said in capsys.readouterr().err) is not delivered
    assert out.exists() is delivered


# --- the real Animator --------------------------------------------------------------------


class BlackedOutReader(OpenCVReader):
    """A driving clip whose frames [start, stop) are black: the face is lost, then back."""

    def __init__(self, path: str, start: int, stop: int, fps: float) -> None:
        super().__init__(path)
        self.fps, self._start, self._stop, self._n = fps, start, stop, 0

    def read(self) -> np.ndarray | None:
        image = super().read()
        if image is not None:
            if self._start <= self._n < self._stop:
                image = np.zeros_like(image)
            self._n += 1
        return image


@pytest.mark.slow
def test_face_lost_and_regained_keeps_the_avatar_coming(data_dir, astronaut_bgr):
    animate = pytest.importorskip("streamer.animate")
    portrait_mod = pytest.importorskip("streamer.portrait")
    portrait = portrait_mod.enroll_images([astronaut_bgr], portrait_mod.EnrollConfig(crop_size=256))
    processor = animate.Animator(portrait, animate.AnimateOptions(fps=15.0, full_frame=False))
    clip = str(data_dir / "driving" / "woman_beige_backdrop.mp4")
    reader = BlackedOutReader(clip, start=15, stop=30, fps=15.0)  # one second without a face
    source = ThreadedSource(
        reader, name="blacked out", loop=False, realtime=True, is_file=True, config=CaptureConfig()
    )
    sink = FakeSink()
    with Pipeline(source, processor, [sink]) as pipeline:
        pipeline.run(duration=3.0)
        assert pipeline.error is None
    indices = [r.index for r in sink.received]
    assert any(i < 15 for i in indices)
    assert any(15 <= i < 30 for i in indices)  # output kept coming without a face
    assert any(i >= 30 for i in indices)  # and after it came back
    assert {r.shape for r in sink.received} == {(256, 256, 3)}


def test_numbered_images_survive_the_fake_processor():
    assert image_number(FakeProcessor(32).process(numbered_image(7))) == 7


def test_stream_logs_its_own_notes_not_every_ice_check(monkeypatch):
    """`stream --output webrtc` printed aioice's INFO lines (each candidate pair checked,
    with this machine's addresses) among its own."""
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # both put back after the test
    monkeypatch.setattr(root, "level", root.level)
    for name in ("aioice", "aiortc"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    live_cli._configure_logging()
    assert logging.getLogger("streamer").getEffectiveLevel() == logging.INFO
    assert not logging.getLogger("aioice.ice").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiortc.rtcpeerconnection").isEnabledFor(logging.INFO)


def hinted(rates: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """What a SlowHint said, fed (frames given, frames made) in each second, as totals."""
    said: list[tuple[int, int]] = []
    hint = SlowHint(lambda made, given: said.append((made, given)))
    given = made = 0
    for g, m in [(0, 0), *rates]:
        given, made = given + g, made + m
        hint.count(given, made)
    return said


def test_the_slow_hint_speaks_once_after_ten_slow_seconds_in_a_row() -> None:
    slow, nearly = [(30, 20)] * 9, [(30, 29)]
    assert hinted(slow + nearly + slow) == []  # never ten seconds in a row
    assert hinted(slow + nearly + slow + [(30, 20)] * 12) == [(20, 30)]  # once
    assert hinted([(30, 27)] * 20) == []  # keeps up (a frame or three dropped)
    assert hinted([(12, 12)] * 20) == []  # a camera that gives 12 in a dim room: all made
    assert hinted([(0, 0)] * 20) == []  # a camera that stopped


def test_stream_says_once_when_the_neural_renderer_is_too_heavy_for_this_computer() -> None:
    """`stream`'s report: the hint with the neural renderer, none with the training-free
    one (nothing lighter to offer)."""
    said: dict[str, list[str]] = {"neural": [], "warp": []}
    for renderer, lines in said.items():
        report = live_cli.stream_report(renderer, say=lines.append)
        for second in range(15):
            report(PipelineStats(30 * second, 20 * second, 20.0, None, None, ()))
    assert said["warp"] == [] and len(said["neural"]) == 1
    assert said["neural"][0].startswith(
        "headcast: the avatar is made from 20 of the 30 frames a second the camera gives")
    assert "`stream --renderer warp` is lighter" in said["neural"][0]
