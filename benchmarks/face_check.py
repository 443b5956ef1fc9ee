"""What enrollment's face check (streamer.face_check) keeps: animals' "faces" and people's.

    python -m benchmarks.face_check [--data ../shared/data] [--placements 150] [--beside 150]

Animals: the shared dog and cartoon alpaca pictures, each set into plain pictures of five
sizes at --placements random sizes, places and greys (seeded), and on a grid of places in
two; counts the "faces" the face mesh finds there and those the check keeps (target: none).
People: the shared portraits, scikit-image's astronaut, and every 15th frame of the
driving clips and 40th of the training clips; counts the faces found and kept (target:
all), and how far each view's face sits from the face found (IOD, p50 / p99 / max).
Beside a person: each animal at --beside random places in the left half of a plain picture,
and scikit-image's astronaut in the right; where the mesh finds the animal's "face" alone,
whether enrollment keeps the person and not the animal (target: all, none), and in video
mode how soon the person is taken up and how many frames the animal is followed (none).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks.quality import default_data_dir

ANIMALS = ("no_face_dog.jpg", "no_face_cartoon_alpaca.jpg")
CANVASES = ((480, 640), (720, 1280), (900, 600), (1080, 1920), (512, 512))
VIEWS = ("mirrored", "turned +", "turned -")
SHOWN = 45  # frames an animal beside a person is shown to video mode


def place(picture: np.ndarray, canvas: tuple[int, int], side: int, x: int, y: int,
          grey: int) -> np.ndarray:
    """`picture` scaled to `side` px wide, set at (x, y) in a plain (h, w) picture."""
    image = np.full((*canvas, 3), grey, np.uint8)
    scaled = cv2.resize(picture, (side, side * picture.shape[0] // picture.shape[1]))
    scaled = scaled[:canvas[0] - y, :canvas[1] - x]
    image[y:y + scaled.shape[0], x:x + scaled.shape[1]] = scaled
    return image


def placements(picture: np.ndarray, count: int, seed: int = 1) -> Iterator[np.ndarray]:
    """`count` random placements of `picture`, then a grid of places in two plain pictures."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        canvas = CANVASES[k % len(CANVASES)]
        side = int(rng.integers(120, min(canvas) + 1))
        grey = int(rng.integers(0, 256))
        tall = side * picture.shape[0] // picture.shape[1]
        x = int(rng.integers(0, canvas[1] - side + 1))
        y = int(rng.integers(0, max(canvas[0] - tall, 0) + 1))
        yield place(picture, canvas, side, x, y, grey)
    for canvas in CANVASES[:2]:
        for side in (200, 260, 320, 400):
            for x in range(0, canvas[1] - side + 1, 120):
                yield place(picture, canvas, side, x, (canvas[0] - side) // 2, 128)


def beside_a_person(picture: np.ndarray, person: np.ndarray, count: int,
                    seed: int = 3) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`count` pairs of plain pictures (480 × 640 and 720 × 1280 in turn): `picture` at a
    random size and place in the left half, and the same with `person` at a random size and
    place in the right half."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        canvas = CANVASES[k % 2]
        side = int(rng.integers(160, 320))
        x = int(rng.integers(0, canvas[1] // 2 - side // 2))
        alone = place(picture, canvas, side, x, int(rng.integers(0, canvas[0] - side)), 128)
        wide = int(rng.integers(160, 320))
        tall = wide * person.shape[0] // person.shape[1]
        x = canvas[1] - wide - int(rng.integers(0, 60))
        y = int(rng.integers(0, max(canvas[0] - tall, 1)))
        both = alone.copy()
        scaled = cv2.resize(person, (wide, tall))[:canvas[0] - y]
        both[y:y + scaled.shape[0], x:x + wide] = scaled
        yield alone, both


def people(data: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR picture) of the shared portraits with a face, the astronaut, and frames of
    the shared clips."""
    from skimage import data as stock

    from streamer.video_io import read_image, read_video_frames

    for path in sorted((data / "portraits").iterdir()):
        if path.suffix in (".jpg", ".png") and not path.name.startswith("no_face"):
            yield path.name, read_image(path)
    yield "astronaut", cv2.cvtColor(stock.astronaut(), cv2.COLOR_RGB2BGR)
    for folder, step in (("driving", 15), ("train", 40)):
        for clip in sorted((data / folder).glob("*.mp4")):
            for i, frame in enumerate(read_video_frames(clip)):
                if i % step == 0:
                    yield f"{clip.name}:{i}", frame


def main(argv: list[str] | None = None) -> None:
    import streamer  # noqa: F401  (one BLAS thread, as headcast runs)
    from streamer.face_check import MAX_DRIFT, faces_seen_again, view_drifts
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_image

    parser = argparse.ArgumentParser(prog="python -m benchmarks.face_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--placements", type=int, default=150)
    parser.add_argument("--beside", type=int, default=150,
                        help="tries at an animal beside a person (beside_a_person)")
    args = parser.parse_args(argv)

    print("| pictures | placements | faces found | faces kept |")
    print("|---|---|---|---|")
    with FaceTracker(video=False) as tracker:
        for name in ANIMALS:
            found = kept = shown = 0
            for image in placements(read_image(args.data / "portraits" / name), args.placements):
                shown += 1
                found += len(tracker.detect_all(image))
                kept += len(faces_seen_again(tracker, image))  # squares too, where none is
            print(f"| {name} | {shown} | {found} | {kept} |")
        rows = []
        for name, image in people(args.data):
            face = tracker.detect(image)
            if face is not None:
                rows.append((name, view_drifts(tracker, image, face)))
    worst = np.array([d for _, d in rows])
    kept = int((worst.max(axis=1) <= MAX_DRIFT).sum())
    print(f"| people (portraits, astronaut, clip frames) | {len(rows)} | {len(rows)} | {kept} |")
    print()
    print("| people, view | p50 IOD | p99 IOD | max IOD | the max's picture |")
    print("|---|---|---|---|---|")
    for j, view in enumerate(VIEWS):
        column = worst[:, j]
        at = rows[int(np.argmax(column))][0]
        print(f"| {view} | {np.median(column):.3f} | {np.percentile(column, 99):.3f} | "
              f"{column.max():.3f} | {at} |")
    missed = [name for name, d in rows if max(d) > MAX_DRIFT]
    if missed:
        print("people not kept:", ", ".join(missed))
    print()
    beside(args.data, args.beside)


def beside(data: Path, tries: int) -> None:
    """An animal whose "face" the mesh finds, and a person beside it (beside_a_person, the
    astronaut's head and shoulders): whether enrollment's check (faces_seen_again) keeps the
    person and not the animal, and how soon video mode takes the person up with the picture
    held for SHOWN frames (and whether it follows the animal)."""
    from skimage import data as stock

    from streamer.face_check import faces_seen_again
    from streamer.tracker import FaceTracker, face_box
    from streamer.video_io import read_image

    def hers(face: np.ndarray | None, width: int) -> bool:
        """A face in the right half of a picture `width` wide: the person's, not the
        animal's."""
        return face is not None and face_box(face)[0] > width / 2

    person = cv2.cvtColor(stock.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 120:400]
    print(f"| beside a person ({tries} tries) | animal found alone | whole pass finds the "
          "person | person kept | animal kept | video: person taken up (frame p50 / max) | "
          "video: frames the animal followed |")
    print("|---|---|---|---|---|---|---|")
    with FaceTracker(video=False) as still:
        for name in ANIMALS:
            picture = read_image(data / "portraits" / name)
            found = whole = kept = animal = followed = 0
            taken: list[float] = []
            for alone, both in beside_a_person(picture, person, tries):
                if not still.detect_all(alone):
                    continue
                found += 1
                width = both.shape[1]
                whole += any(hers(f, width) for f in still.detect_all(both))
                sides = [hers(f, width) for f in faces_seen_again(still, both)]
                kept += any(sides)
                animal += not all(sides)
                with FaceTracker(video=True) as video:
                    seen = [video.detect(both) for _ in range(SHOWN)]
                on_right = [hers(f, width) for f in seen]
                followed += sum(f is not None for f in seen) - sum(on_right)
                taken.append(on_right.index(True) if any(on_right) else np.inf)
            first = np.array(taken)
            when = f"({np.median(first):.0f} / {first.max():.0f})" if taken else "(— / —)"
            print(f"| {name} | {found} | {whole} | {kept} | {animal} | "
                  f"{int(np.isfinite(first).sum())} {when} | {followed} |")


if __name__ == "__main__":
    main()
