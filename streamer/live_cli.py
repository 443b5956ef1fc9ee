"""`headcast stream`: animate portraits live from a webcam (or a clip) to the outputs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.cli import (
    add_camera_wait_option,
    add_overlap_option,
    add_renderer_option,
    parse_duration,
    parse_port,
    parse_size,
    renderer_config,
)
from streamer.controls import HELP, VOICE_HELP, Controls
from streamer.errors import HeadcastError, SinkUnavailableError, VoiceUnavailableError
from streamer.frames import Sink
from streamer.output_file import VIDEO_SUFFIXES, check_output
from streamer.paste import Detail
from streamer.pipeline import AvatarProcessor, Pipeline, PipelineConfig, PipelineStats
from streamer.renderer import RendererConfig, resolve_name
from streamer.sinks import FITS, check_sink_name, create_sink
from streamer.slow_hint import SlowHint, too_slow
from streamer.sources import CameraSource, CaptureConfig, Source, VideoFileSource
from streamer.voice import VoiceFeed, open_voice_feed, parse_voice

if TYPE_CHECKING:
    from streamer.portrait import Portrait

DEFAULT_OUTPUTS = ("virtualcam", "preview")
MAX_PORTRAITS = 9  # one per key, 1-9


def add_stream_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `stream` to an argparse subparsers object; sets func=run_stream."""
    parser = subparsers.add_parser(
        "stream", allow_abbrev=False,
        help="animate portraits live: webcam → virtual camera, preview, WebRTC, file",
        description=f"Animate portraits live. In the preview window, {HELP}{VOICE_HELP} "
        "(with --voice: on/off).",
    )
    parser.add_argument(
        "--portrait",
        nargs="+",
        required=True,
        metavar="P",
        help=".headcast files or portrait images; keys 1-9 switch between them",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--driving",
        metavar="CLIP",
        help="drive from a video file (looped, in real time) instead of a webcam",
    )
    source.add_argument("--camera", default="0", help="webcam index or device path (default: 0)")
    add_camera_wait_option(parser)
    parser.add_argument(
        "--output",
        nargs="+",
        metavar="OUT",
        help="virtualcam[:DEVICE], preview, webrtc[:PORT], whip:URL or record:FILE.mp4 "
        f"(default: {' '.join(DEFAULT_OUTPUTS)})",
    )
    parser.add_argument(
        "--voice",
        metavar="MIC",
        help="this microphone goes with the avatar, in step with its lips, to the outputs "
        "that carry sound (webrtc, whip, the recording): default, FORMAT:DEVICE (alsa:hw:1, "
        "pulse:default, avfoundation::0, dshow:audio=NAME) or a sound file",
    )
    parser.add_argument("--record", metavar="OUT.mp4", help="also record the avatar to an mp4")
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print latency and frame rates every second (and on the preview)",
    )
    parser.add_argument(
        "--no-head-pose",
        action="store_true",
        help="transfer expressions only, keep the portrait's head still",
    )
    add_renderer_option(parser, precision="int8")
    add_overlap_option(parser)
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="flip the camera left-right first, so the avatar moves like a mirror",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=(1280, 720),
        metavar="WxH",
        help="virtual camera frame size (default: 1280x720)",
    )
    parser.add_argument(
        "--fit",
        choices=sorted(FITS),
        default="letterbox",
        help="fit the avatar into --size with black bars (default) or by cropping",
    )
    parser.add_argument(
        "--duration",
        type=parse_duration,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until q or Ctrl+C)",
    )
    parser.set_defaults(func=run_stream)
    return parser


def run_stream(args: argparse.Namespace) -> int:
    """Run `headcast stream`; HeadcastErrors propagate for the caller to print (exit 2)."""
    _configure_logging()
    if len(args.portrait) > MAX_PORTRAITS:  # the 10th on could not be switched to
        raise HeadcastError(f"stream takes up to {MAX_PORTRAITS} portraits (keys 1-9 switch "
                            f"between them), got {len(args.portrait)}")
    outputs = list(args.output or DEFAULT_OUTPUTS)
    _check_outputs(outputs, args.voice, args.record, args.driving)
    renderer = renderer_config(args)  # before the camera opens: a device asked for must be there
    portraits = load_portraits(args.portrait)
    with ExitStack() as stack:
        voice = open_voice_feed(args.voice) if args.voice else None
        if voice is not None:
            stack.callback(voice.close)
        source = open_source(args.driving, args.camera, args.camera_wait)
        stack.callback(source.close)
        processor = make_processor(portraits[0], source.fps, renderer, args.detail)
        stack.callback(processor.close)
        config = PipelineConfig(
            mirror=args.mirror, head_pose=not args.no_head_pose, overlap=not args.no_overlap
        )
        pipeline = stack.enter_context(Pipeline(source, processor, (), config, portraits))
        controls = Controls(pipeline, voice.toggle_mute if voice is not None else None)
        context = OutputContext(args, pipeline, controls, voice)
        for spec in outputs:
            pipeline.add_sink(make_output(spec, context))
        if args.record:
            pipeline.add_sink(make_output(f"record:{args.record}", context))
        if "preview" in outputs:
            print(HELP + (VOICE_HELP if voice is not None else ""), file=sys.stderr)
        print("headcast: look at the camera with a resting face for a moment: that is the "
              "avatar's rest (r or POST /recalibrate takes it again)", file=sys.stderr)
        try:
            pipeline.run(duration=args.duration,
                         report=stream_report(resolve_name(renderer), stats=args.stats))
        except KeyboardInterrupt:  # the normal way to stop, once frames have gone out
            if not any(sink.delivered for sink in pipeline.stats().sinks):
                # it had exited 0 and said nothing, its --record never written
                print("headcast: stopped before the first avatar frame: no output got a "
                      "frame, nothing was recorded", file=sys.stderr)
                return 130
    return 0


def load_portraits(paths: Sequence[str]) -> list[Portrait]:
    """Load .headcast files; enroll image files on the fly."""
    from streamer.offline import open_portrait

    return [open_portrait(Path(path), live=True) for path in paths]


def make_processor(
    portrait: Portrait, fps: float, renderer: RendererConfig = RendererConfig(),
    detail: Detail = "auto",
) -> AvatarProcessor:
    """The real Animator; its filters and easing run on the source's frame clock."""
    from streamer.animate import AnimateOptions, Animator

    options = AnimateOptions(fps=fps, calibration="steady", clock="wall", renderer=renderer,
                             detail=detail)
    return Animator(portrait, options)


def open_source(driving: str | None, camera: str, camera_wait_s: float = 300.0) -> Source:
    """A looping real-time VideoFileSource for a clip, else the webcam (index or path),
    waited for camera_wait_s when it stops delivering."""
    if driving is not None:
        return VideoFileSource(driving, loop=True, realtime=True)
    config = CaptureConfig(camera_wait_s=camera_wait_s)
    return CameraSource(int(camera) if camera.isdigit() else camera, config)


@dataclass(frozen=True)
class OutputContext:
    """What the outputs of one `stream` are made from."""

    args: argparse.Namespace
    pipeline: Pipeline
    controls: Controls
    voice: VoiceFeed | None = None  # --voice, for the outputs that carry sound


def make_output(spec: str, context: OutputContext) -> Sink:
    """A sink for one --output value: a registered name, or name:ARG (whip:URL)."""
    name, _, arg = spec.partition(":")
    options = OUTPUT_OPTIONS.get(name, _url_option)
    return create_sink(name, **options(arg, context))


OutputOptions = Callable[[str, OutputContext], dict[str, Any]]


def _virtualcam_options(arg: str, context: OutputContext) -> dict[str, Any]:
    args = context.args
    return {"size": args.size, "fit": args.fit} | ({"device": arg} if arg else {})


def _preview_options(arg: str, context: OutputContext) -> dict[str, Any]:
    pipeline, stats, voice = context.pipeline, context.args.stats, context.voice

    def overlay() -> list[str]:  # what the person should know, then the numbers (--stats)
        muted = ["voice off (v turns it on)"] if voice is not None and voice.muted else []
        return pipeline.status_lines() + muted + (pipeline.stats().lines() if stats else [])

    controls = context.controls
    return {"on_key": controls.handle_key, "on_close": controls.quit, "overlay": overlay}


def _webrtc_options(arg: str, context: OutputContext) -> dict[str, Any]:
    port = {"port": parse_port(arg)} if arg else {}
    return {"on_recalibrate": context.pipeline.recalibrate} | port | _voice_option(context)


def _whip_options(arg: str, context: OutputContext) -> dict[str, Any]:
    return _url_option(arg, context) | _voice_option(context)


def _record_options(arg: str, context: OutputContext) -> dict[str, Any]:
    return {"path": arg} | _voice_option(context)


def _voice_option(context: OutputContext) -> dict[str, Any]:
    return {"voice": context.voice} if context.voice is not None else {}


def _url_option(arg: str, context: OutputContext) -> dict[str, Any]:
    return {"url": arg} if arg else {}


# Keyword arguments for create_sink(), per output name (`name:ARG` passes ARG); other
# names get url=ARG when given (whip:URL).
OUTPUT_OPTIONS: dict[str, OutputOptions] = {
    "virtualcam": _virtualcam_options,
    "preview": _preview_options,
    "webrtc": _webrtc_options,
    "whip": _whip_options,
    "record": _record_options,
}
VOICE_OUTPUTS = ("webrtc", "whip", "record")  # the outputs that carry sound


def _check_outputs(outputs: Sequence[str], voice: str | None = None,
                   record: str | None = None, driving: str | None = None) -> None:
    """Fail before the slow loading when an output name is unknown (or lacks its argument),
    a recording cannot be written where asked, or --voice has no output to go to, or cannot
    be opened as given."""
    names = [spec.partition(":")[0] for spec in outputs]
    recordings = [record] if record else []
    twice = sorted({spec for spec in outputs if outputs.count(spec) > 1})
    if twice:
        raise SinkUnavailableError(f"--output {twice[0]} is given twice: give each output once")
    for spec in outputs:
        name, _, arg = spec.partition(":")
        check_sink_name(name)
        if name == "record":
            if not arg:
                raise SinkUnavailableError("--output record needs a file: record:OUT.mp4 "
                                           "(or --record OUT.mp4)")
            recordings.append(arg)
        if name == "webrtc" and arg:
            try:
                parse_port(arg)
            except argparse.ArgumentTypeError as exc:
                raise SinkUnavailableError(f"--output {spec}: {exc}") from None
    for path in recordings:
        check_output(path, VIDEO_SUFFIXES, [driving])  # as typed: `out.mp4/` is refused
    files = [Path(path).resolve() for path in recordings]
    if len(set(files)) < len(files):  # two writers in one file had left it unreadable
        raise SinkUnavailableError("one file is asked to record twice (--record and --output "
                                   "record:, or twice): give each recording its own file")
    if voice is None:
        return
    if record is None and not any(name in VOICE_OUTPUTS for name in names):
        raise VoiceUnavailableError(
            "--voice goes to the outputs that carry sound: add --output webrtc or whip:URL, "
            "or --record OUT.mp4")
    parse_voice(voice)


def _print_stats(stats: PipelineStats) -> None:
    print(" | ".join(stats.lines()), file=sys.stderr, flush=True)


def stream_report(renderer: str, stats: bool = False,
                  say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
                  ) -> Callable[[PipelineStats], None]:
    """`stream`'s report each second: the stats with --stats; with the neural renderer
    (`renderer`, resolved), once, that this computer is too slow for it (SlowHint)."""
    hint = SlowHint(lambda made, given: say(
        "headcast: " + too_slow(made, given, "the camera", "stream"))
    ) if renderer == "neural" else None

    def report(snapshot: PipelineStats) -> None:
        if stats:
            _print_stats(snapshot)
        if hint is not None:
            hint.count(snapshot.offered, snapshot.processed)

    return report


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="headcast: %(message)s")
    # headcast's own notes at INFO; the WebRTC libraries' (every ICE candidate pair checked,
    # with this machine's addresses) only when they warn
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(logging.WARNING)
