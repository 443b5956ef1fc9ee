"""Where a command writes its result, checked before any work: a path that cannot take the
file would otherwise fail only when the file is opened or finished, after minutes of
tracking, rendering or fine-tuning, and an output that is one of the inputs would be
emptied before it is read."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from streamer.errors import OutputFileError

# containers that take H.264 beside a copied AAC track (checked for each; WebM takes neither)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")


def check_output(path: str | Path, suffixes: Sequence[str] = (),
                 inputs: Iterable[str | Path | None] = ()) -> None:
    """Raise OutputFileError unless `path` can be written: its name ends in one of
    `suffixes` (any, when empty) and not in a slash (given as typed), it is not a folder,
    its folder exists and is writable (so is the file, when it exists), and it is none of
    `inputs` (the files the command reads)."""
    if isinstance(path, str) and (wrong := _ends_in_slash(path)):
        raise OutputFileError(wrong)
    path = Path(path)
    if path.is_dir():
        raise OutputFileError(f"{path} is a folder: give the name of a file to write")
    if suffixes and path.suffix.lower() not in suffixes:
        endings = ", ".join(suffixes[:-1]) + " or " * (len(suffixes) > 1) + suffixes[-1]
        raise OutputFileError(f"{path}: give the file a name ending in {endings}")
    folder = path.parent
    if not folder.is_dir():
        raise OutputFileError(f"cannot write {path}: there is no folder {folder} (create it first)")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputFileError(f"cannot write {path}: permission denied")
    if path.exists():
        for source in inputs:
            if source is not None and Path(source).exists() and path.samefile(source):
                raise OutputFileError(f"{path} is also read by this command: writing it would "
                                      "destroy it; give the output another name")


def file_argument(text: str) -> Path:
    """argparse type of an output file: a name that ends in a slash is refused, where Path
    would drop the slash (`-o mona.headcast/` overwrote the file mona.headcast)."""
    if wrong := _ends_in_slash(text):
        raise argparse.ArgumentTypeError(wrong)
    return Path(text)


def folder_argument(text: str) -> Path:
    """argparse type of a folder a developer tool writes into (made when missing): refused
    where a file stands on the path (the tools had failed with FileExistsError's traceback
    after their work, or before it in os.mkdir)."""
    if wrong := folder_problem(Path(text)):
        raise argparse.ArgumentTypeError(wrong)
    return Path(text)


def parent_folder_argument(text: str) -> Path:
    """argparse type of a file a developer tool writes (its folder made when missing)."""
    if wrong := _ends_in_slash(text) or folder_problem(Path(text).parent):
        raise argparse.ArgumentTypeError(wrong)
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give the name of a file to write")
    return Path(text)


def folder_problem(folder: Path) -> str:
    """What stops `folder` from being made or written into; "" when nothing does."""
    for step in (folder, *folder.parents):
        if step.is_dir():
            writable = os.access(step, os.W_OK)
            return "" if writable else f"cannot write into {step}: permission denied"
        if step.exists():
            where = "" if step == folder else f"{folder}: "
            return f"{where}{step} is a file, not a folder"
    return ""


def _ends_in_slash(text: str) -> str:
    """What is wrong with a file's name as typed that ends in a slash (Path drops it, and
    the file before it was written over); "" where it does not."""
    return f"{text} ends in a slash: give the name of a file" if text.endswith(
        ("/", os.sep)) else ""


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """The path to write `path`'s content to: a hidden sibling with the same suffix (which
    picks the container), moved onto `path` when the block ends, removed when it raises. So a
    run stopped half way (Ctrl+C, an error) leaves whatever was at `path` as it was, not a
    cut-off file in its place. A write that fails there (a full disk) raises OutputFileError
    naming `path`."""
    part = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        raise unwritable(path, exc) from None
    finally:
        part.unlink(missing_ok=True)


def unwritable(path: Path, exc: OSError) -> OutputFileError:
    """The error for an OSError met writing `path`: cannot write PATH: no space left on
    device."""
    reason = (exc.strerror or str(exc)).rstrip(".")
    return OutputFileError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}")
