"""`headcast serve` and `headcast client`: argv → configs → the WebRTC server / client.

streamer/cli.py adds the commands with add_serve_command / add_client_command; each sets
`func` on its parser to the run function, which returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

import numpy as np

from streamer.cli import (
    add_camera_wait_option,
    add_overlap_option,
    add_renderer_option,
    parse_count,
    parse_duration,
    parse_megabytes,
    parse_port,
    renderer_config,
)
from streamer.errors import PortraitFileError
from streamer.frames import FrameProcessor, Sink
from streamer.output_file import VIDEO_SUFFIXES, check_output
from streamer.paste import Detail
from streamer.renderer import RendererConfig
from streamer.sources import Source
from streamer.voice import Heard
from streamer.webrtc_client import EndpointConfig, run_client
from streamer.webrtc_server import (
    WILDCARD_HOSTS,
    ServerConfig,
    ServerThread,
    resolve_token,
    token_query,
)


class AnimatorFactory:
    """ProcessorFactory for `headcast serve`: one Animator per session, shared portrait."""

    def __init__(self, portrait: object, renderer: RendererConfig = RendererConfig(),
                 detail: Detail = "auto") -> None:
        self._portrait = portrait
        self._renderer = renderer
        self._detail: Detail = detail

    @property
    def portrait(self) -> object:
        """The portrait new sessions get (the last one enrolled)."""
        return self._portrait

    @property
    def renderer(self) -> str:
        """The renderer its Animators use, resolved ("neural" or "warp")."""
        from streamer.renderer import resolve_name

        return resolve_name(self._renderer)

    def create(self) -> FrameProcessor:
        from streamer.animate import AnimateOptions, Animator

        # the wall clock, as `stream`'s: counted in frames, the resting face was taken after
        # 12-22 s on a loaded machine (60 frames at 3 fps) where 2 s were meant
        options = AnimateOptions(calibration="steady", clock="wall", renderer=self._renderer,
                                 detail=self._detail)
        return Animator(self._portrait, options)

    def enroll(self, image: np.ndarray, face: int | None = None) -> object:
        from streamer.offline import enroll_shots, for_live
        from streamer.portrait import EnrollConfig

        portrait = enroll_shots([for_live(image)], EnrollConfig(face=face))  # ψ embedded once
        self._portrait = portrait
        return portrait

    def make_avatar(self, processor: FrameProcessor, portrait: object) -> object:
        return processor.make_avatar(portrait)  # type: ignore[attr-defined]

    def apply(self, processor: FrameProcessor, avatar: object) -> None:
        processor.set_portrait(avatar)  # type: ignore[attr-defined]


def load_portraits(paths: Sequence[str]) -> object:
    """One path: a portrait image or .headcast file; several: images of one person
    (few-shot enrollment); none: the stock astronaut photo."""

    from streamer.offline import enroll_shots, for_live, open_portrait
    from streamer.video_io import read_image

    if len(paths) <= 1:
        return open_portrait(Path(paths[0]) if paths else None, live=True)
    if any(p.endswith(".headcast") for p in paths):
        raise PortraitFileError("give one .headcast file, or image files only")
    # with the neural model's embedding of all K shots (enroll_images alone had left it to
    # the renderer, which embeds the rendered shot only)
    return enroll_shots([for_live(read_image(p)) for p in paths], names=paths)


# ---- serve --------------------------------------------------------------------------


def add_serve_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve", allow_abbrev=False,
        help="animate the webcam of a browser (or WHIP client) and send the avatar back",
        description="Open http://HOST:PORT/ in a browser: it sends its webcam (WHIP) and "
        "plays the avatar. WHEP players (OBS, the /player page) get the newest avatar, and "
        "the voice its sender sends, in step with its lips.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; "
        "anything else requires a token)",
    )
    parser.add_argument("--port", type=parse_port, default=8080,
                        help="TCP port (default 8080; 0: any free one)")
    add_renderer_option(parser, precision="int8")
    parser.add_argument(
        "--token",
        help="bearer token clients must send; generated and "
        "printed when listening beyond this machine without one",
    )
    parser.add_argument(
        "--portrait",
        nargs="+",
        default=[],
        metavar="P",
        help="portrait image(s) or a .headcast file (default: a stock photo)",
    )
    parser.add_argument(
        "--max-sessions",
        type=parse_count,
        default=4,
        help="concurrent WebRTC sessions; more get HTTP 503 (default 4)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=parse_megabytes,
        default=8.0,
        help="largest portrait upload in MiB (default 8)",
    )
    parser.add_argument(
        "--cert",
        help="PEM certificate: serve https (browsers on other machines allow the webcam "
        "only on https pages)",
    )
    parser.add_argument("--key", help="PEM private key of --cert")
    add_overlap_option(parser, " per session")
    parser.set_defaults(func=run_serve)
    return parser


def serve_config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=resolve_token(args.host, args.token),
        max_sessions=args.max_sessions,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        tls_cert=args.cert,
        tls_key=args.key,
        overlap=not args.no_overlap,
    )


def run_serve(args: argparse.Namespace) -> int:
    config = serve_config(args)
    renderer = renderer_config(args)  # before the portraits load: a device asked must be there
    factory = AnimatorFactory(load_portraits(args.portrait), renderer, args.detail)
    server = ServerThread(config, processors=factory)
    server.start()
    query = token_query(config.token)
    print(f"headcast: open {server.url}/{query} in a browser", file=sys.stderr)
    print(f"headcast: WHIP {server.url}/whip   WHEP {server.url}/whep", file=sys.stderr)
    if config.host in WILDCARD_HOSTS:  # server.url is this machine's own address then
        elsewhere = server.url.replace("localhost", "THIS-MACHINE", 1)
        print(f"headcast: from another machine: {elsewhere}/{query} (its browser gives the "
              "page a camera over https only: --cert and --key)", file=sys.stderr)
    if config.token and not args.token:
        print(f"headcast: token {config.token}", file=sys.stderr)
    try:
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


# ---- client -------------------------------------------------------------------------


def add_client_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "client", allow_abbrev=False,
        help="send this machine's webcam to `headcast serve` and use the avatar locally",
        description="WHIP-posts the webcam (or a clip) to SERVER and feeds the avatar it "
        "returns into the virtual camera, or into a file with --record.",
    )
    parser.add_argument(
        "--server", required=True, help="the serve URL, e.g. http://192.168.1.5:8080 (or its /whip)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    source.add_argument("--driving", help="a video file to send instead of the camera")
    add_camera_wait_option(parser)
    parser.add_argument("--token", help="the token the server printed")
    parser.add_argument(
        "--record",
        metavar="OUT.mp4",
        help="write the avatar to this file instead of the virtual camera",
    )
    parser.add_argument(
        "--voice",
        metavar="MIC",
        help="send this microphone too, for the server's viewers (they hear it in step with "
        "the avatar's lips; with --record, the server sends it back for the file): default, "
        "FORMAT:DEVICE (alsa:hw:1, pulse:default, avfoundation::0, dshow:audio=NAME) or a "
        "sound file",
    )
    parser.add_argument("--duration", type=parse_duration, help="stop after this many seconds")
    parser.set_defaults(func=run_client_command)
    return parser


def whip_url(server: str) -> str:
    """http://host:port (or …/) → http://host:port/whip; a URL with a path is kept."""
    base = server.rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    path = base.partition("://")[2].partition("/")[2]
    return base if path else f"{base}/whip"


def client_sink(args: argparse.Namespace, voice: Heard | None = None) -> Sink:
    """--record's file (with `voice` beside the avatar), else the virtual camera."""
    from streamer.sinks import create_sink

    if args.record:
        return create_sink("record", path=args.record, voice=voice)
    return create_sink("virtualcam")


def client_source(args: argparse.Namespace) -> Source:
    from streamer.sources import CameraSource, CaptureConfig, VideoFileSource

    if args.driving:
        return VideoFileSource(args.driving)
    return CameraSource(args.camera, CaptureConfig(camera_wait_s=args.camera_wait))


def run_client_command(args: argparse.Namespace) -> int:
    from streamer.voice import VoiceListeners, open_voice_feed

    config = EndpointConfig(url=whip_url(args.server), token=args.token)
    if args.record:
        check_output(args.record, VIDEO_SUFFIXES, [args.driving])

    def connected() -> None:
        output = args.record or "the virtual camera"
        print(
            f"headcast: connected to {config.url}, avatar → {output}; Ctrl-C stops", file=sys.stderr
        )

    with ExitStack() as stack:
        voice = open_voice_feed(args.voice) if args.voice else None
        if voice is not None:
            stack.callback(voice.close)
        source = client_source(args)
        stack.callback(source.close)
        # the recording's voice: the server sends it back, delayed as the avatar comes back
        back = VoiceListeners() if voice is not None and args.record else None
        sink = client_sink(args, back)
        with suppress(KeyboardInterrupt):
            stats = asyncio.run(run_client(config, source, sink, args.duration, connected, voice,
                                           back))
            print(f"headcast: {stats.line()}", file=sys.stderr)
    return 0
