"""Outputs are checked before any work: a bad path fails at once, with a named error, and
never costs the work done or an input file."""

from pathlib import Path

import cv2
import pytest

from streamer.cli import main
from streamer.errors import OutputFileError
from streamer.output_file import VIDEO_SUFFIXES, check_output
from tests.fakes import write_clip


def test_a_writable_path_passes(tmp_path: Path) -> None:
    check_output(tmp_path / "a.mp4", VIDEO_SUFFIXES)
    check_output(tmp_path / "A.MP4", VIDEO_SUFFIXES)  # suffixes in any case
    (tmp_path / "old.mkv").write_bytes(b"x")
    check_output(tmp_path / "old.mkv", VIDEO_SUFFIXES)  # an old result is overwritten
    check_output(tmp_path / "any.name")  # no suffixes asked: any name


@pytest.mark.parametrize(("name", "message"), [
    ("a.webm", r"a name ending in \.mp4, \.m4v, \.mov, \.mkv or \.avi"),
    ("noext", "a name ending in"),
    ("missing/a.mp4", "there is no folder"),
    ("sub.mp4", "is a folder"),
])
def test_a_path_that_cannot_take_the_file_is_refused(tmp_path: Path, name: str,
                                                    message: str) -> None:
    (tmp_path / "sub.mp4").mkdir()
    with pytest.raises(OutputFileError, match=message):
        check_output(tmp_path / name, VIDEO_SUFFIXES)


def test_an_input_is_never_the_output(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", frames=3, fps=10.0)
    (tmp_path / "link.mp4").symlink_to(clip)
    for output in (clip, tmp_path / "link.mp4", tmp_path / "." / "in.mp4"):
        with pytest.raises(OutputFileError, match="also read by this command"):
            check_output(output, VIDEO_SUFFIXES, [None, clip])
    check_output(tmp_path / "out.mp4", VIDEO_SUFFIXES, [clip])


def test_animate_refuses_a_bad_output_before_any_work(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing" / "demo.mp4"
    assert main(["animate", "-o", str(missing), "--quiet"]) == 2
    assert "there is no folder" in capsys.readouterr().err and not missing.parent.exists()
    assert main(["animate", "-o", str(tmp_path / "demo.webm"), "--quiet"]) == 2
    assert ".mp4" in capsys.readouterr().err and not (tmp_path / "demo.webm").exists()


def test_animate_onto_its_own_driving_clip_leaves_the_clip_whole(tmp_path: Path, capsys) -> None:
    clip = write_clip(tmp_path / "me.mp4", frames=5, fps=10.0)
    before = clip.read_bytes()
    assert main(["animate", "--driving", str(clip), "-o", str(clip), "--quiet"]) == 2
    assert "also read by this command" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_enroll_writes_only_a_portrait_file(tmp_path: Path, astronaut_bgr, capsys) -> None:
    image = tmp_path / "me.png"
    cv2.imwrite(str(image), astronaut_bgr)
    assert main(["enroll", str(image), "-o", str(tmp_path / "me")]) == 2
    assert "a name ending in .headcast" in capsys.readouterr().err
    assert not (tmp_path / "me").exists()
    assert main(["enroll", str(image), "-o", str(tmp_path / "no" / "me.headcast")]) == 2
    assert "there is no folder" in capsys.readouterr().err


def test_stream_and_client_refuse_a_recording_they_cannot_write(tmp_path: Path, capsys) -> None:
    """Before the portrait is read (it does not exist) or a server is called (none listens)."""
    record = str(tmp_path / "missing" / "me.mp4")
    assert main(["stream", "--portrait", "absent.jpg", "--driving", "absent.mp4",
                 "--record", record]) == 2
    assert "there is no folder" in capsys.readouterr().err
    webm = f"record:{tmp_path}/a.webm"
    assert main(["stream", "--portrait", "absent.jpg", "--output", webm]) == 2
    assert "a name ending in" in capsys.readouterr().err
    assert main(["client", "--server", "http://127.0.0.1:9", "--driving", "absent.mp4",
                 "--record", record]) == 2
    assert "there is no folder" in capsys.readouterr().err
    # a name ending in a slash is not the file before it (Path drops the slash)
    kept = tmp_path / "kept.mp4"
    kept.write_bytes(b"an earlier recording")
    for argv in (["stream", "--portrait", "absent.jpg", "--record", f"{kept}/"],
                 ["stream", "--portrait", "absent.jpg", "--output", f"record:{kept}/"],
                 ["client", "--server", "http://127.0.0.1:9", "--record", f"{kept}/"]):
        assert main(argv) == 2
        assert "kept.mp4/ ends in a slash: give the name of a file" in capsys.readouterr().err
    assert kept.read_bytes() == b"an earlier recording"


# each developer tool's output, as its argv takes it; OUT stands for the path under test
TOOL_OUTPUTS = [
    ("models.prepare", ["CLIPS", "OUT"]),
    ("models.pack", ["CLIPS", "OUT"]),
    ("models.average", ["a.pt", "b.pt", "--out", "OUT/soup.pt"]),
    ("export", ["--out", "OUT"]),
    ("benchmarks.quality", ["--out", "OUT"]),
    ("benchmarks.figures", ["--out", "OUT"]),
    ("benchmarks.kshot", ["--out", "OUT"]),
    ("benchmarks.training_curves", ["CLIPS", "-o", "OUT/curves.png"]),
    ("benchmarks.webrtc_latency", ["--strip", "OUT/strip.png"]),
    ("models.train", ["models/configs/tiny_smoke.json", "--out", "OUT"]),
]


@pytest.mark.parametrize(("module", "argv"), TOOL_OUTPUTS, ids=[m for m, _ in TOOL_OUTPUTS])
def test_a_developer_tool_refuses_an_output_folder_where_a_file_stands(
        tmp_path: Path, capsys, module: str, argv: list[str]) -> None:
    """A file where the output folder (or the output's folder) would go: the tools had made
    their folders with mkdir and failed with FileExistsError's traceback, prepare and train
    after minutes of work."""
    import importlib

    (tmp_path / "clips").mkdir()
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    repo = Path(__file__).resolve().parent.parent
    args = [a.replace("OUT", str(blocker)).replace("CLIPS", str(tmp_path / "clips"))
            for a in argv]
    args = [str(repo / a) if a.startswith("models/configs/") else a for a in args]
    main_of = importlib.import_module(f"{module}.__main__" if module == "export" else module).main
    try:
        code = main_of(args)
    except SystemExit as exc:  # argparse's refusal
        code = exc.code
    assert code == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "keep me"
