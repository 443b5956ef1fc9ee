"""The `headcast` command line. argv is read here and nowhere else."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from streamer.devices import DEVICES, installed_version
from streamer.errors import HeadcastError
from streamer.output_file import file_argument

# past 2 the lids bulge and fold on a blink (3), the face tears (10); nan and inf had failed
# in an SVD after the whole clip was tracked
MAX_EXPRESSION_GAIN = 2.0
MAX_SIDE = 8192  # 8K; beyond it frames of gigabytes (libx264 takes up to 16384)


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720): a video frame's size, each side even (H.264 keeps colour at
    half size: an odd side was cut by one pixel) and 16 to MAX_SIDE pixels (100000x100000
    failed to allocate its first frame, after the whole clip was tracked)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from None
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise argparse.ArgumentTypeError(
            f"{text}: each side must be 16 to {MAX_SIDE} pixels")
    if width % 2 or height % 2:
        even = f"{width + width % 2}x{height + height % 2}"
        raise argparse.ArgumentTypeError(
            f"{text}: each side must be even (H.264 stores colour at half size): {even}?")
    return width, height


def parse_port(text: str) -> int:
    """A TCP port to listen on: 0 (any free one) to 65535 (70000 had failed in the socket's
    bind, with a traceback, after the portraits were loaded)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port is a number from 0 (any free one) to 65535, got {text!r}")
    return port


def add_renderer_option(p: argparse.ArgumentParser, precision: str = "fp32") -> None:
    """--renderer and --precision (whose default differs: live commands run int8), --device,
    --detail, --moving-background and --one-shot-per-frame."""
    p.add_argument(
        "--renderer",
        choices=("auto", "neural", "warp"),
        default="auto",
        help="neural: the learned few-shot generator; warp: training-free; auto (default): "
        "neural when its model is installed",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "int8", "fp16"),  # streamer.neural.PRECISIONS (not imported: cv2)
        default=precision,
        help=f"the neural generator in float, quantized to int8 (about 20%% faster on a CPU) "
        f"or in half precision (for a GPU provider; slower than fp32 on a CPU) (default "
        f"{precision}; a portrait's fine-tuned generator always runs in fp32)",
    )
    p.add_argument(
        "--device",
        choices=("auto", *DEVICES),
        default="auto",
        help="where the generators run: cuda or tensorrt need onnxruntime-gpu in place of "
        "onnxruntime (README, 'GPU'); auto (default): cuda when the onnxruntime in use has it, "
        "else cpu",
    )
    p.add_argument(
        "--detail",
        choices=("auto", "full", "crop"),  # streamer.paste.DETAILS (not imported: cv2)
        default="auto",
        help="take the face's texture from the full-resolution portrait instead of the "
        "rendered crop: auto (default) when the face is at least 1.5x larger than the crop, "
        "full always, crop never",
    )
    p.add_argument(
        "--moving-background",
        action="store_true",
        help="let the background near the head move with it, as the warp's spline says (by "
        "default it stays still where the portrait file marks the person)",
    )
    p.add_argument(
        "--one-shot-per-frame",
        action="store_true",
        help="a portrait of several shots: warp each frame's mouth and eyes from the shot "
        "nearest in the whole face, as the rest (by default each from the shot where it is "
        "nearest in shape, which costs a second or third warp on the frames that need one)",
    )


def parse_seconds(text: str) -> float:
    """A wait: 0 or more seconds, inf for ever; nan is refused (a --camera-wait of nan had
    waited for ever: nan is past no time), and so is a negative one (taken as 0, unsaid)."""
    value = _number(text, float)
    if not value >= 0:  # nor nan
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text!r}")
    return value


def parse_duration(text: str) -> float:
    """How long to run: more than 0 seconds, inf for ever (`stream --duration 0` or -1 had
    stopped at once, written nothing and exited 0; nan had run for ever)."""
    value = _number(text, float)
    if not value > 0:  # nor nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def parse_count(text: str) -> int:
    """A whole number, at least 1 (serve --max-sessions 0 had failed with a traceback)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, at least 1, got {text!r}")
    return value


def parse_megabytes(text: str) -> float:
    """A size in MiB, above 0 and finite (serve --max-upload-mb nan had failed with a
    traceback, -1 refused every upload)."""
    value = _number(text, float)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a size in MiB above 0, got {text!r}")
    return value


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def add_camera_wait_option(p: argparse.ArgumentParser) -> None:
    """--camera-wait: how long a camera that stopped delivering is waited for (`stream`,
    `client`)."""
    p.add_argument(
        "--camera-wait", type=parse_seconds, default=300.0, metavar="SECONDS",
        help="a camera that stops delivering (unplugged, taken by another app) is reopened "
        "every second for this long while the avatar rests and the outputs keep going "
        "(default 300; 0: stop at once)",
    )


def add_overlap_option(p: argparse.ArgumentParser, where: str = "") -> None:
    """--no-overlap: a staged processor's two halves on one thread (`stream`, `serve`)."""
    p.add_argument(
        "--no-overlap",
        action="store_true",
        help=f"track and render each frame on one thread{where} (lower latency, lower frame "
        "rate; by default the next frame is tracked while this one renders)",
    )


def renderer_config(args: argparse.Namespace):  # -> streamer.renderer.RendererConfig
    from streamer.devices import device_providers
    from streamer.renderer import RendererConfig

    return RendererConfig(name=args.renderer, precision=args.precision,
                          providers=device_providers(args.device),
                          still_background=not args.moving_background,
                          feature_shots=not args.one_shot_per_frame)


def _face_number(text: str) -> int:
    try:
        n = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a face number, got {text!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"faces are numbered from 1 (the leftmost), got {n}")
    return n


def add_face_option(p: argparse.ArgumentParser, what: str = "a portrait picture") -> None:
    p.add_argument(
        "--face", type=_face_number, default=None, metavar="N",
        help=f"{what} with several faces: animate the N-th from the left (1 = the leftmost; "
        "by default the only face, or the largest where the others are much smaller)",
    )


def _add_enroll(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", allow_abbrev=False,
                       help="compute a portrait's cache file once (.headcast)")
    p.add_argument("images", nargs="*", type=Path, help="1..K pictures of one face")
    p.add_argument("-o", "--output", type=file_argument, required=True,
                   help="NAME.headcast to write")
    p.add_argument("--shots", type=int, default=None,
                   help="K: use this many images or video frames (default: all images, 8 frames)")
    p.add_argument("--from-video", type=Path, default=None,
                   help="take the K shots from this clip, spread over it")
    p.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                   help="fine-tune the neural model on the shots for STEPS steps (needs torch)")
    p.add_argument("--no-anchors", action="store_true",
                   help="fine-tune without holding the mouth to the shipped model's (paintings: "
                        "lets the painting's own mouth open as the warp opens it)")
    p.add_argument(
        "--crop-size",
        type=int,
        choices=(256, 512),
        default=512,
        help="rendered crop side in pixels (default 512)",
    )
    add_face_option(p, "pictures (or a --from-video clip)")
    p.set_defaults(func=_run_enroll)


def _add_animate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", allow_abbrev=False,
                       help="animate a portrait from a driving video into a file")
    p.add_argument(
        "--portrait",
        type=Path,
        default=None,
        help=".headcast file or image (default: the astronaut photo from scikit-image)",
    )
    p.add_argument(
        "--driving",
        type=Path,
        default=None,
        help="driving video (default: the built-in motion template)",
    )
    p.add_argument("-o", "--output", type=file_argument, required=True, help="output .mp4")
    p.add_argument(
        "--size", type=parse_size, default=None, help="output WIDTHxHEIGHT (default: portrait's)"
    )
    p.add_argument(
        "--crop-size",
        type=int,
        choices=(256, 512),
        default=512,
        help="rendered crop side when enrolling an image on the fly (default 512)",
    )
    add_face_option(p)
    p.add_argument(
        "--motion",
        choices=("relative", "absolute"),
        default="relative",
        help="relative: driver's change applied to the portrait (default); absolute: "
        "the driver's own landmarks (same person as the portrait)",
    )
    p.add_argument("--no-head-pose", action="store_true", help="transfer expression only")
    p.add_argument(
        "--expression-gain", type=float, default=1.0,
        help=f"scale expressions, 0 to {MAX_EXPRESSION_GAIN:g} (default 1)"
    )
    p.add_argument(
        "--lip-thickness", type=float, default=0.0,
        help="how much of the driver's lips thinning or thickening the portrait takes: 0 keeps "
        "the portrait's own lips (default), 1 takes the driver's change",
    )
    p.add_argument(
        "--neutral", choices=("rest", "first"), default="rest",
        help="the driver's face the portrait's own stands for: rest (default): the first "
        "with the eyes open and the mouth no wider than the portrait's, so a clip that starts "
        "mid-word or mid-blink still moves the mouth and blinks; first: the first face as it is",
    )
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="skip the second look: by default the output is rendered once, tracked, and "
        "rendered again with the targets corrected (about twice the time)",
    )
    add_renderer_option(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_animate)


def _run_enroll(args: argparse.Namespace) -> int:
    from streamer.offline import EnrollJob, run_enroll
    from streamer.portrait import EnrollConfig

    if not args.images and args.from_video is None:
        raise HeadcastError("give portrait images or --from-video CLIP")
    if args.images and args.from_video is not None:  # the images were left out, unsaid
        raise HeadcastError("give portrait images or --from-video CLIP, not both: the shots "
                            "are taken from one or the other")
    if args.shots is not None and args.shots < 1:
        raise HeadcastError("--shots must be at least 1")
    if args.finetune < 0:  # had enrolled without fine-tuning, without a word
        raise HeadcastError(f"--finetune takes 0 (none) or more steps, got {args.finetune}")
    config = EnrollConfig(crop_size=args.crop_size, face=args.face)
    job = EnrollJob(args.images, args.output, config, args.shots, args.from_video, args.finetune,
                    not args.no_anchors)
    portrait = run_enroll(job)
    extra = ", embedded" if portrait.psi.size else ""
    extra += ", fine-tuned" if portrait.generator.size else ""
    print(f"{args.output}: {len(portrait.sources)} shot(s), crop {portrait.crop_size}px{extra}")
    return 0


def _run_animate(args: argparse.Namespace) -> int:
    from streamer.animate import AnimateOptions
    from streamer.motion import MotionConfig
    from streamer.offline import PORTRAIT_SUFFIX, AnimateJob, open_portrait, run_animate
    from streamer.portrait import EnrollConfig
    from streamer.refine import RefineConfig

    if not 0 <= args.lip_thickness < math.inf:  # nor nan
        raise HeadcastError(f"--lip-thickness must be 0 or more, got {args.lip_thickness}: 0 keeps "
                            "the portrait's own lips, 1 takes the driver's thinning and thickening")
    if not 0 <= args.expression_gain <= MAX_EXPRESSION_GAIN:
        raise HeadcastError(
            f"--expression-gain must be 0 to {MAX_EXPRESSION_GAIN:g}, got {args.expression_gain}: "
            "1 moves as the driver does, 0 keeps the face at rest (its blinks still follow)")
    if args.max_frames is not None and args.max_frames < 1:
        raise HeadcastError("--max-frames must be at least 1")
    if args.face is not None and args.portrait and args.portrait.suffix == PORTRAIT_SUFFIX:
        raise HeadcastError(f"--face picks a face in a picture; {args.portrait} holds one "
                            "already (it had been ignored)")
    renderer = renderer_config(args)  # before any work: a device asked for must be there
    portrait = open_portrait(args.portrait, EnrollConfig(crop_size=args.crop_size, face=args.face))
    options = AnimateOptions(
        motion=MotionConfig(
            mode=args.motion, head_pose=not args.no_head_pose,
            expression_gain=args.expression_gain, lip_thickness=args.lip_thickness,
        ),
        renderer=renderer,
        refine=RefineConfig(enabled=not args.no_refine),
        detail=args.detail,
        neutral=args.neutral,
    )
    job = AnimateJob(portrait, args.driving, args.output, options, args.size, args.max_frames)
    result = run_animate(job, progress=not args.quiet)
    rested = f" (no face in {result.faceless}: the avatar rested there)" if result.faceless else ""
    print(f"{args.output}: {result.frames} frames{rested}")
    if result.announced is not None:
        print(f"headcast: warning: {args.driving} could be read up to frame {result.frames} of "
              f"the {result.announced} its header announces (is the file cut short?); the "
              "video ends there", file=sys.stderr)
    return 0


def version_line() -> str:
    """headcast's version and what it runs on, for `headcast --version` (and bug reports);
    from the installed packages' metadata, importing none of them."""
    runtime = [f"{name} {v}" for name in ("onnxruntime", "onnxruntime-gpu", "mediapipe", "numpy")
               if (v := installed_version(name))]
    python = ".".join(map(str, sys.version_info[:3]))
    return f"headcast {installed_version('headcast') or 'not installed'} (Python {python}, " \
        f"{', '.join(runtime)})"


class _PrintVersion(argparse.Action):
    """--version: the line is made only when asked for, not on every start."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 help: str | None = None) -> None:  # `help`: the name argparse passes
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(version_line())
        parser.exit()


class _OneLineErrors(argparse.ArgumentParser):
    """A refused option in one line, as every other bad input (argparse printed its 12-line
    usage above it); its subcommands' parsers are of this class too (add_subparsers)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the "
                     "options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="headcast", description="Make a portrait talk, blink and turn its head like you.",
        allow_abbrev=False,  # whole names only: `stream --port 8080` was read as --portrait
    )
    parser.add_argument("--version", action=_PrintVersion,
                        help="show headcast's version and what it runs on, and exit")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{enroll,animate,stream,serve,client}")
    _add_enroll(sub)
    _add_animate(sub)
    for add in _live_commands():
        add(sub)
    return parser


def _live_commands() -> list:
    from streamer.live_cli import add_stream_command
    from streamer.webrtc_cli import add_client_command, add_serve_command

    return [add_stream_command, add_serve_command, add_client_command]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HeadcastError as exc:
        print(f"headcast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("enroll", "animate"):  # each writes its file whole or not at all
            print(f"headcast: stopped: {args.output} not written (a file already there is "
                  "left as it was)", file=sys.stderr)
        else:  # the live commands stop on Ctrl+C themselves once running: this is before
            print(f"headcast: {args.command} stopped while starting", file=sys.stderr)
        return 130
