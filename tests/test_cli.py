import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamer.cli import main
from streamer.offline import AnimateResult
from tests.helpers import two_people

NOTHING = AnimateResult(frames=0, faceless=0)  # what a stand-in for run_animate returns


def _animate_options(monkeypatch, flags):  # -> streamer.animate.AnimateOptions
    """The options `headcast animate -o x.mp4 --quiet FLAGS` runs with (run_animate stubbed;
    main must return 0)."""
    import streamer.offline

    seen = []
    monkeypatch.setattr(streamer.offline, "run_animate",
                        lambda job, progress=True: seen.append(job.options) or NOTHING)
    assert main(["animate", "-o", "x.mp4", "--quiet", *flags]) == 0
    return seen[0]


def _frames_and_audio(path):
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        size = (c.streams.video[0].width, c.streams.video[0].height)
        has_audio = bool(c.streams.audio)
    return n, size, has_audio


def test_animate_on_embedded_defaults(tmp_path):
    out = tmp_path / "demo.mp4"
    assert main(["animate", "-o", str(out), "--max-frames", "12", "--quiet"]) == 0
    n, size, audio = _frames_and_audio(out)
    assert n == 12 and size == (512, 512) and not audio  # the astronaut photo is 512²


@pytest.mark.parametrize("flags, detail", [([], "auto"), (["--detail", "full"], "full"),
                                           (["--detail", "crop"], "crop")])
def test_animate_detail_flag_reaches_the_paste_back(monkeypatch, flags, detail):
    """`--detail` picks where the texture comes from (streamer.paste; tested in test_paste)."""
    assert _animate_options(monkeypatch, flags).detail == detail


@pytest.mark.parametrize("flags, still, features", [
    ([], True, True),
    (["--moving-background"], False, True),
    (["--one-shot-per-frame"], True, False),
])
def test_animate_renderer_flags_reach_the_renderer(monkeypatch, flags, still, features):
    """`--moving-background` turns the still background off, `--one-shot-per-frame` the
    mouth's and eyes' own shots (streamer.renderer; tested in test_renderer)."""
    renderer = _animate_options(monkeypatch, flags).renderer
    assert renderer.still_background is still
    assert renderer.feature_shots is features


@pytest.mark.parametrize("flags, thickness", [([], 0.0), (["--lip-thickness", "1"], 1.0)])
def test_animate_lip_thickness_flag_reaches_the_motion_transfer(monkeypatch, flags, thickness):
    """`--lip-thickness` (streamer.motion; tested in test_motion)."""
    assert _animate_options(monkeypatch, flags).motion.lip_thickness == thickness


@pytest.mark.parametrize("flags, neutral", [([], "rest"), (["--neutral", "first"], "first")])
def test_animate_neutral_flag_reaches_the_animator(monkeypatch, flags, neutral):
    """`--neutral` (streamer.neutral; tested in test_neutral)."""
    assert _animate_options(monkeypatch, flags).neutral == neutral


@pytest.mark.parametrize("value", ["-0.5", "nan", "inf"])
def test_animate_refuses_a_lip_thickness_below_0_or_not_a_number(capsys, value):
    assert main(["animate", "-o", "x.mp4", "--quiet", "--lip-thickness", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"headcast: error: --lip-thickness must be 0 or more, got {value}")


@pytest.mark.parametrize("value", ["-1", "2.5", "nan", "inf"])
def test_animate_refuses_an_expression_gain_outside_0_to_2(capsys, value):
    # nan and inf had failed in an SVD after the whole clip was tracked; past 2 the face tears
    assert main(["animate", "-o", "x.mp4", "--quiet", "--expression-gain", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"headcast: error: --expression-gain must be 0 to 2, got {value}")


@pytest.mark.parametrize("value", ["0", "2"])
def test_animate_takes_an_expression_gain_of_0_to_2(monkeypatch, value):
    options = _animate_options(monkeypatch, ["--expression-gain", value])
    assert options.motion.expression_gain == float(value)


def test_animate_without_the_second_look_renders_the_targets_as_transferred(tmp_path):
    from streamer.video_io import read_video_frames

    outs = {}
    for flag in ([], ["--no-refine"]):
        out = tmp_path / f"demo{len(flag)}.mp4"
        args = ["animate", "-o", str(out), "--max-frames", "20", "--quiet", "--renderer", "warp"]
        assert main(args + flag) == 0
        outs[bool(flag)] = np.stack(list(read_video_frames(out)))
    assert outs[True].shape == outs[False].shape == (20, 512, 512, 3)
    diff = np.abs(outs[True].astype(int) - outs[False]).mean(axis=(1, 2, 3))
    assert diff.max() > 0.05  # the refined targets moved the face somewhere


def test_enroll_then_animate_keeps_audio_and_size(tmp_path, data_dir):
    portrait = tmp_path / "einstein.headcast"
    assert main(["enroll", str(data_dir / "portraits" / "einstein.jpg"), "-o", str(portrait)]) == 0
    out = tmp_path / "e.mp4"
    clip = data_dir / "driving" / "man_glasses_orange_wall.mp4"  # has an audio track
    args = ["animate", "--portrait", str(portrait), "--driving", str(clip), "-o", str(out),
            "--max-frames", "20", "--quiet", "--size", "320x240"]
    assert main(args) == 0
    n, size, audio = _frames_and_audio(out)
    assert n == 20 and size == (320, 240) and audio


@pytest.mark.parametrize("case", ["dog", "corrupt", "empty_video", "truncated_video", "missing"])
def test_bad_input_is_a_named_error_with_exit_2(case, tmp_path, data_dir, capsys):
    portrait = data_dir / "portraits" / "einstein.jpg"
    driving = data_dir / "driving" / "man_green_backdrop.mp4"
    if case == "dog":
        portrait = data_dir / "portraits" / "no_face_dog.jpg"
    elif case == "corrupt":
        portrait = tmp_path / "bad.jpg"
        portrait.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    elif case == "empty_video":
        driving = tmp_path / "empty.mp4"
        driving.write_bytes(b"")
    elif case == "truncated_video":
        driving = tmp_path / "cut.mp4"
        driving.write_bytes((data_dir / "driving" / "man_green_backdrop.mp4").read_bytes()[:2000])
    else:
        driving = tmp_path / "nope.mp4"
    code = main(["animate", "--portrait", str(portrait), "--driving", str(driving),
                 "-o", str(tmp_path / "o.mp4"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("headcast: error: ") and "Traceback" not in err


def test_a_picture_of_two_people_asks_which_face_then_takes_the_one_chosen(tmp_path, data_dir,
                                                                         capsys):
    """Two real portraits side by side: enroll names the faces and how to choose; with --face
    it enrolls the one asked for, and animate takes the same option for an image."""
    image = tmp_path / "two.png"
    cv2.imwrite(str(image), two_people(data_dir, side=400))
    out = tmp_path / "one.headcast"
    assert main(["enroll", str(image), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 faces of about one size" in err and "--face N" in err and not out.exists()
    assert f"{image} shows 2 faces" in err  # the file, by its name
    assert main(["enroll", str(image), "--face", "2", "-o", str(out)]) == 0
    from streamer.portrait import load_portrait

    assert load_portrait(out).landmarks[:468, 0].mean() > 400  # Einstein, on the right
    assert main(["animate", "--portrait", str(image), "--face", "1", "--renderer", "warp",
                 "--max-frames", "3", "--no-refine", "--quiet", "-o", str(tmp_path / "a.mp4")]) == 0
    with pytest.raises(SystemExit):
        main(["enroll", str(image), "--face", "0", "-o", str(out)])


def test_enrollment_errors_name_the_file(tmp_path, data_dir, capsys):
    """Of several pictures, the one without a face is named: as shots of one face (enroll),
    and as avatars to switch between (stream)."""
    portraits = data_dir / "portraits"
    dog = portraits / "no_face_dog.jpg"
    out = tmp_path / "x.headcast"
    assert main(["enroll", str(portraits / "einstein.jpg"), str(dog), "-o", str(out)]) == 2
    assert f"no human face found in {dog}:" in capsys.readouterr().err and not out.exists()
    assert main(["stream", "--portrait", str(portraits / "einstein.jpg"), str(dog),
                 "--driving", "absent.mp4", "--output", "record:x.mp4"]) == 2
    assert f"no human face found in {dog}:" in capsys.readouterr().err


@pytest.mark.parametrize("placed", [False, True], ids=["squeezed", "where the mesh sees a face"])
def test_a_driving_clip_without_a_face_is_refused_before_rendering(tmp_path, data_dir, capsys,
                                                                   placed):
    """The output would be the portrait at rest from start to end: not what anyone asked for.
    (A clip the face leaves for a while is fine: the next test.) Placed so, the dog is
    followed by video mode unless checked (tests/test_tracker.py)."""
    from benchmarks.face_check import place

    dog = cv2.imread(str(data_dir / "portraits" / "no_face_dog.jpg"))
    dog = place(dog, (480, 640), 200, 120, 140, 128) if placed else cv2.resize(dog, (320, 240))
    clip = tmp_path / "dog.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10, dog.shape[1::-1])
    for i in range(8):
        writer.write(np.roll(dog, 4 * i, axis=1))
    writer.release()
    out = tmp_path / "o.mp4"
    assert main(["animate", "--driving", str(clip), "-o", str(out), "--quiet"]) == 2
    assert "no human face found in any of its 8 frames" in capsys.readouterr().err
    assert not out.exists()


def test_animate_needs_a_frame_to_write(tmp_path, capsys):
    assert main(["animate", "-o", str(tmp_path / "o.mp4"), "--max-frames", "0", "--quiet"]) == 2
    assert "--max-frames must be at least 1" in capsys.readouterr().err


def test_truncated_tail_keeps_what_decoded(tmp_path, data_dir):
    src = (data_dir / "driving" / "man_green_backdrop.mp4").read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(src[: len(src) // 2])
    from streamer.errors import VideoReadError
    from streamer.video_io import read_video_frames

    try:
        frames = list(read_video_frames(cut))
    except VideoReadError:
        return  # an mp4 cut before its index cannot be read at all: a named error is right
    assert 0 < len(frames) < 78 and frames[0].shape == (512, 512, 3)


def test_animate_says_when_its_clip_is_cut_short(tmp_path, astronaut_bgr, capsys):
    """A clip whose index is at its front (as phones and `-movflags faststart` write them)
    cut half way: it is animated up to the cut, as before, but no longer without a word."""
    import av

    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        face = cv2.resize(astronaut_bgr[:300, 100:400], (256, 256))
        for k in range(40):
            image = np.roll(face, k // 4, axis=1)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(whole)) as container:  # cut where its 21st frame begins
        at = [packet.pos for packet in container.demux(video=0)][20]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:at])
    for clip, said in ((whole, False), (cut, True)):
        out = tmp_path / f"{clip.stem}_out.mp4"
        assert main(["animate", "--driving", str(clip), "-o", str(out), "--renderer", "warp",
                     "--no-refine", "--quiet"]) == 0
        frames = _frames_and_audio(out)[0]
        err = capsys.readouterr().err
        assert (frames == 40) != said and (0 < frames < 40) == said
        assert (f"could be read up to frame {frames} of the 40 its header announces" in err
                ) == said


def test_face_leaves_the_frame_and_the_run_goes_on(tmp_path, data_dir, capsys):
    """A driving clip whose face is gone for a second (frames blacked out): every frame is
    still written, and the user is told where the avatar rested."""
    from streamer.video_io import VideoWriter, read_video_frames

    clip = tmp_path / "gap.mp4"
    with VideoWriter(clip, 25) as w:
        clip_frames = read_video_frames(data_dir / "driving" / "man_green_backdrop.mp4", 70)
        for i, f in enumerate(clip_frames):
            w.write(np.zeros_like(f) if 20 <= i < 45 else f)
    out = tmp_path / "o.mp4"
    assert main(["animate", "--driving", str(clip), "-o", str(out), "--quiet"]) == 0
    assert _frames_and_audio(out)[0] == 70
    assert "70 frames (no face in 25: the avatar rested there)" in capsys.readouterr().out


def test_python_dash_m_streamer():
    r = subprocess.run([sys.executable, "-m", "streamer", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for command in ("enroll", "animate", "stream", "serve", "client"):
        assert command in r.stdout


def test_version_names_what_it_runs_on(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    line = capsys.readouterr().out
    assert info.value.code == 0 and line.count("\n") == 1
    assert line.startswith(f"headcast {version('headcast')} (Python {sys.version.split()[0]}, ")
    assert f"mediapipe {version('mediapipe')}" in line and "onnxruntime" in line


def test_a_video_given_as_a_portrait_points_to_enroll_from_video(tmp_path, data_dir, capsys):
    clip = data_dir / "driving" / "man_green_backdrop.mp4"
    assert main(["animate", "--portrait", str(clip), "-o", str(tmp_path / "o.mp4")]) == 2
    assert f"enroll --from-video {clip}" in capsys.readouterr().err


def test_enroll_k_shots_from_a_video_then_animate_with_each_renderer(tmp_path, data_dir):
    from streamer.neural import neural_available
    from streamer.portrait import load_portrait

    portrait = tmp_path / "few.headcast"
    clip = data_dir / "driving" / "few_shot_woman_indoor.mp4"
    assert main(["enroll", "--from-video", str(clip), "--shots", "4", "--crop-size", "256",
                 "-o", str(portrait)]) == 0
    loaded = load_portrait(portrait)
    assert len(loaded.shots) == 4 and len(set(loaded.sources)) == 4
    assert loaded.references.shape == (3, 256, 256, 3)  # frames of one camera: warp sources
    assert bool(loaded.psi.size) == neural_available()  # embedded when the model is installed
    for renderer in ("warp", "auto"):
        out = tmp_path / f"{renderer}.mp4"
        assert main(["animate", "--portrait", str(portrait), "--renderer", renderer,
                     "--max-frames", "5", "--quiet", "-o", str(out)]) == 0
        assert _frames_and_audio(out)[0] == 5


def test_enroll_needs_images_or_a_video(tmp_path, capsys):
    assert main(["enroll", "-o", str(tmp_path / "x.headcast")]) == 2
    assert "--from-video" in capsys.readouterr().err
    assert main(["enroll", "a.jpg", "--shots", "0", "-o", str(tmp_path / "x.headcast")]) == 2
    # both: the images had been left out without a word, the shots all taken from the clip
    assert main(["enroll", "a.jpg", "--from-video", "c.mp4", "-o", str(tmp_path / "x.headcast")
                 ]) == 2
    assert "give portrait images or --from-video CLIP, not both" in capsys.readouterr().err


def test_an_output_named_with_a_trailing_slash_is_refused(tmp_path, capsys):
    """`-o mona.headcast/` had overwritten the file mona.headcast (Path drops the slash)."""
    kept = tmp_path / "mona.headcast"
    kept.write_bytes(b"a portrait")
    for argv in (["enroll", "a.jpg", "-o", f"{kept}/"], ["animate", "-o", f"{tmp_path}/o.mp4/"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and "ends in a slash: give the name of a file" in (
            capsys.readouterr().err)
    assert kept.read_bytes() == b"a portrait"


@pytest.mark.parametrize("command", ["animate", "enroll"])
def test_a_run_stopped_half_way_leaves_the_file_that_was_there(tmp_path, capsys, monkeypatch,
                                                               astronaut_bgr, command):
    """Ctrl+C while animate writes its frames (or enroll its file) had left a cut-off video
    in place of the one there, and said nothing: the output is written beside it and moved
    onto it only when whole."""
    from streamer import portrait as P
    from streamer import video_io

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    picture = tmp_path / "face.png"
    cv2.imwrite(str(picture), astronaut_bgr)
    out = tmp_path / ("old.mp4" if command == "animate" else "old.headcast")
    out.write_bytes(b"the user's earlier result")
    if command == "animate":
        writes = video_io.VideoWriter.write

        def write(self, image, time=None):  # the 4th frame is never written
            if self.frames_written == 3:
                interrupted()
            writes(self, image, time)

        monkeypatch.setattr(video_io.VideoWriter, "write", write)
        argv = ["animate", "--portrait", str(picture), "-o", str(out), "--max-frames", "8",
                "--quiet"]
    else:
        saves = P.save_portrait

        def save(portrait, path):  # stopped half way through the file
            saves(portrait, path)
            Path(path).write_bytes(Path(path).read_bytes()[:1000])
            interrupted()

        monkeypatch.setattr("streamer.offline.save_portrait", save)
        argv = ["enroll", str(picture), "-o", str(out)]
    assert main(argv) == 130
    assert out.read_bytes() == b"the user's earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["face.png", out.name])
    assert f"stopped: {out} not written (a file already there is left as it was)" in (
        capsys.readouterr().err)
    monkeypatch.undo()  # and a whole run replaces it
    assert main(argv) == 0 and out.read_bytes() != b"the user's earlier result"
    if command == "animate":
        assert _frames_and_audio(out)[0] == 8


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("2", "2")])
def test_importing_headcast_keeps_numpys_blas_to_one_thread_unless_told(preset, expected):
    """OpenBLAS worker threads spin between the tiny solves of the warp and the head pose and
    took half of a 2-core machine from the live loop; the user's own setting wins."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    code = "import streamer, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("flags, anchored", [([], True), (["--no-anchors"], False)])
def test_enroll_finetune_anchors_on_unless_asked(tmp_path, monkeypatch, flags, anchored):
    """`enroll --finetune` holds the mouth with anchors; `--no-anchors` fine-tunes without."""
    pytest.importorskip("torch")
    import cv2
    from skimage import data

    import models.personalize

    seen = []

    def fake_personalize(portrait, shots, options, progress=True, config=None):
        seen.append(options)
        return portrait

    monkeypatch.setattr(models.personalize, "personalize", fake_personalize)
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), data.astronaut()[:, :, ::-1])
    out = tmp_path / "a.headcast"
    assert main(["enroll", str(image), "--finetune", "7", "-o", str(out), *flags]) == 0
    assert out.is_file() and len(seen) == 1
    assert seen[0].steps == 7 and (seen[0].w_anchor > 0) == anchored


@pytest.mark.parametrize("command", [["animate", "-o", "x.mp4"], ["stream"]])
@pytest.mark.parametrize(("size", "said"), [
    ("641x481", "641x481: each side must be even (H.264 stores colour at half size): 642x482?"),
    ("100000x100000", "100000x100000: each side must be 16 to 8192 pixels"),
    ("8x720", "8x720: each side must be 16 to 8192 pixels"),
    ("1280by720", "expected WIDTHxHEIGHT, e.g. 1280x720, got '1280by720'"),
])
def test_a_video_size_is_even_and_at_most_8k_before_any_work(capsys, command, size, said):
    with pytest.raises(SystemExit) as info:
        main([*command, "--size", size])
    assert info.value.code == 2 and said in capsys.readouterr().err


def test_a_video_size_reads_as_width_by_height():
    from streamer.cli import parse_size

    assert parse_size("1280x720") == (1280, 720) and parse_size("8192X16") == (8192, 16)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_refused_before_any_work(capsys, tmp_path, port):
    said = f"a port is a number from 0 (any free one) to 65535, got '{port}'"
    with pytest.raises(SystemExit) as info:
        main(["serve", f"--port={port}"])
    assert info.value.code == 2 and said in capsys.readouterr().err
    # stream checks its outputs before it loads a portrait (this one does not exist)
    missing = str(tmp_path / "missing.headcast")
    assert main(["stream", "--portrait", missing, "--output", f"webrtc:{port}"]) == 2
    assert f"--output webrtc:{port}: {said}" in capsys.readouterr().err


def test_options_are_taken_by_their_whole_name_only(capsys):
    # `stream --port 8080` had been read as --portrait 8080 (an abbreviation): "8080: no
    # such file"
    with pytest.raises(SystemExit) as info:
        main(["stream", "--portrait", "a.headcast", "--output", "webrtc", "--port", "8080"])
    assert info.value.code == 2 and "unrecognized arguments: --port 8080" in capsys.readouterr().err


def test_enroll_refuses_a_negative_number_of_finetune_steps(capsys, tmp_path):
    out = tmp_path / "a.headcast"
    assert main(["enroll", "--finetune", "-5", "-o", str(out), "x.jpg"]) == 2
    assert "--finetune takes 0 (none) or more steps, got -5" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("argv", "said"), [
    (["serve", "--max-sessions", "0"], "argument --max-sessions: expected a whole number, at "
                                       "least 1, got '0'"),
    (["serve", "--max-upload-mb", "nan"], "argument --max-upload-mb: expected a size in MiB "
                                          "above 0, got 'nan'"),
    (["serve", "--max-upload-mb", "-1"], "expected a size in MiB above 0, got '-1'"),
    (["stream", "--portrait", "a.headcast", "--duration", "nan"],
     "argument --duration: expected a number of seconds above 0, got 'nan'"),
    (["stream", "--portrait", "a.headcast", "--duration", "0"],  # had exited 0, writing nothing
     "argument --duration: expected a number of seconds above 0, got '0'"),
    (["client", "--duration=-1"], "argument --duration: expected a number of seconds above 0, "
                                  "got '-1'"),
    (["stream", "--camera-wait=-1"], "argument --camera-wait: expected 0 or more seconds, got "
                                     "'-1'"),
    (["client", "--camera-wait", "soon"], "argument --camera-wait: expected a number, got 'soon'"),
])
def test_numbers_out_of_their_range_are_refused_before_any_work(capsys, argv, said):
    # each had failed with a traceback once the portraits were loaded, run for ever, or
    # refused every upload
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and said in capsys.readouterr().err


def test_durations_and_waits_read_as_seconds():
    from streamer.cli import parse_count, parse_duration, parse_megabytes, parse_seconds

    assert parse_seconds("2.5") == 2.5 and parse_seconds("0") == 0.0  # --camera-wait 0: at once
    assert parse_seconds("inf") == float("inf") == parse_duration("inf")  # for ever
    assert parse_duration("0.5") == 0.5
    assert parse_count("4") == 4 and parse_megabytes("0.5") == 0.5


def test_animate_keeps_the_timing_of_a_clip_whose_frame_rate_changes(tmp_path, astronaut_bgr):
    # a phone's clip changes its frame rate with the light: written at its mean rate, the
    # avatar had run 0.26 s ahead of the clip's sound in a clip of 30 fps, then 15, then 30
    from fractions import Fraction

    face = cv2.resize(astronaut_bgr, (256, 256))
    times = [i / 30 for i in range(20)] + [20 / 30 + i / 15 for i in range(10)]
    times += [times[-1] + (i + 1) / 30 for i in range(10)]
    clip = tmp_path / "phone.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 90000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(face, format="bgr24")
            frame.pts, frame.time_base = round(t * 90000), Fraction(1, 90000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "avatar.mp4"
    assert main(["animate", "--driving", str(clip), "-o", str(out), "--quiet", "--no-refine",
                 "--renderer", "warp"]) == 0
    with av.open(str(out)) as container:
        shown = [frame.time for frame in container.decode(video=0)]
    assert shown == pytest.approx(times, abs=1e-3)


def test_stream_takes_up_to_9_portraits_one_per_key(capsys, tmp_path):
    # the 10th on had been enrolled and could not be switched to
    many = [str(tmp_path / f"p{i}.jpg") for i in range(10)]  # none exists: refused before
    assert main(["stream", "--portrait", *many]) == 2
    assert "stream takes up to 9 portraits (keys 1-9 switch between them), got 10" in (
        capsys.readouterr().err)


def test_animate_refuses_face_with_a_portrait_file(capsys, tmp_path):
    portrait = tmp_path / "one.headcast"  # refused before it is read
    assert main(["animate", "--portrait", str(portrait), "--face", "2", "-o",
                 str(tmp_path / "o.mp4")]) == 2
    assert f"--face picks a face in a picture; {portrait} holds one already" in (
        capsys.readouterr().err)


def test_animate_to_another_shape_keeps_the_face_in_view(tmp_path, data_dir):
    # cut equally from both sides, the Mona Lisa's face (in the top third of a tall picture)
    # was cut away at 1280x720
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_video_frames

    out = tmp_path / "wide.mp4"
    assert main(["animate", "--portrait", str(data_dir / "portraits" / "mona_lisa.jpg"),
                 "-o", str(out), "--size", "640x360", "--max-frames", "2", "--no-refine",
                 "--renderer", "warp", "--quiet"]) == 0
    frame = next(iter(read_video_frames(out)))
    assert frame.shape == (360, 640, 3)
    with FaceTracker(video=False) as tracker:
        face = tracker.detect(frame)
    assert face is not None and face[:, 1].min() > 0 and face[:, 1].max() < 360  # all of it


@pytest.mark.parametrize("argv", [
    ["animate", "--size", "641x481"],
    ["stream", "--portrait", "x.headcast", "--duration", "0"],
    ["serve", "--port", "70000"],
    ["enroll", "a.jpg", "-o", "mona.headcast/"],
    ["stream", "--portrait", "x.headcast", "--port", "8080"],
    [],
])
def test_a_refused_option_is_one_line(argv, capsys):
    """argparse's refusals printed the 12-line usage above their error, where every other bad
    input is one line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "error: " in err
    assert "--help` lists the options" in err


@pytest.mark.parametrize("command", ["animate", "enroll"])
def test_a_full_disk_is_said_in_one_line_and_the_old_file_left(tmp_path, command):
    """A disk that fills while `animate` or `enroll` writes (the file's size limit,
    RLIMIT_FSIZE, in a child process): one line naming the output and why, exit 2, no
    traceback, and the file that was there before is left as it was, with no part-written
    file beside it."""
    import resource
    import signal

    from skimage import data

    out = tmp_path / ("demo.mp4" if command == "animate" else "astronaut.headcast")
    out.write_bytes(b"the user's earlier result")
    picture = tmp_path / "astronaut.png"
    cv2.imwrite(str(picture), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    argv = (["animate", "-o", str(out), "--renderer", "warp", "--max-frames", "60", "--quiet"]
            if command == "animate" else ["enroll", str(picture), "-o", str(out)])

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    done = subprocess.run([sys.executable, "-m", "streamer", *argv], capture_output=True,
                          text=True, timeout=300, preexec_fn=small_disk)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"headcast: error: cannot write {out}: file too large")
    assert out.read_bytes() == b"the user's earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, picture.name])


def test_a_picture_given_as_the_driving_clip_is_named_a_still(tmp_path, capsys):
    """`animate --driving PHOTO` had made a video of one frame (`stream --driving PHOTO` loops
    it as a clip, and `enroll --from-video PHOTO` takes it as a shot: both do what they say)."""
    from skimage import data

    still = tmp_path / "me.jpg"
    cv2.imwrite(str(still), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    argv = ["animate", "--driving", str(still), "-o", str(tmp_path / "o.mp4"), "--quiet"]
    assert main(argv) == 2
    assert f"{still}: a still picture, not a video" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.jpg"]


def test_enroll_prints_no_mediapipe_chatter(tmp_path):
    """`enroll` printed MediaPipe's C++ start-up line ("W0000 … inference_feedback_manager.cc
    … Feedback manager requires a model with a single signature inference") from the
    person segmentation's first read: the terminal shows headcast's own line alone."""
    from skimage import data

    picture = tmp_path / "astronaut.png"
    cv2.imwrite(str(picture), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    done = subprocess.run([sys.executable, "-m", "streamer", "enroll", str(picture), "-o",
                           str(tmp_path / "a.headcast")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for chatter in ("W0000", "inference_feedback_manager", "TensorFlow Lite", "absl"):
        assert chatter not in done.stderr, done.stderr
    assert done.stdout.startswith(f"{tmp_path / 'a.headcast'}: 1 shot(s)")
