import numpy as np
import pytest

from streamer import landmarks as L
from streamer.animate import AnimateOptions, Animator
from streamer.neutral import rest_frame
from streamer.offline import animation_targets
from streamer.refine import RefineConfig
from streamer.template import load_template

# The built-in template (man_glasses_office): blinks at frames 11–17, 37–44 and 141–143,
# opens the mouth past 0.1 IOD at 68–71 and 87–89, and is at rest at frame 0.
BLINK, OPEN = 40, 69


@pytest.fixture(scope="module")
def template() -> np.ndarray:
    return load_template().landmarks


def test_the_first_face_is_kept_where_it_is_at_rest(template):
    assert rest_frame(list(template), template[0]) == 0
    assert rest_frame([None, None, *template[60:]], template[0]) == 2  # the first face
    assert rest_frame([None, None], template[0]) is None


def test_a_clip_caught_mid_blink_or_mid_word_rests_on_a_later_frame(template):
    for start in (BLINK, OPEN):
        track = list(template[start:])
        rest = rest_frame(track, template[0])
        assert rest is not None and 0 < rest < 30
        face = track[rest]
        assert L.eye_gap(face) > 0.8 * np.median([L.eye_gap(f) for f in track])
        assert L.mouth_gap(face) < 0.04


def test_a_portrait_with_its_mouth_open_keeps_a_first_face_as_open(template):
    """Whatever the driver's neutral shows, the portrait's own face stands for: a driver
    starting mid-word is a fine neutral for a portrait whose mouth is open as wide."""
    track = list(template[OPEN:])
    assert L.mouth_gap(track[0]) > 0.1
    assert rest_frame(track, template[OPEN]) == 0  # the portrait as open
    assert rest_frame(track, template[0]) > 0  # the portrait's mouth shut


def _targets(portrait, track: list[np.ndarray], neutral: str = "rest") -> list[np.ndarray]:
    animator = Animator(portrait, AnimateOptions(refine=RefineConfig(enabled=False),
                                                 neutral=neutral))  # type: ignore[arg-type]
    try:
        return animation_targets(animator, track)
    finally:
        animator.close()


def test_animate_from_a_clip_caught_mid_blink_still_blinks(astronaut_portrait, template):
    """The clip's first face mid-blink taken as the neutral made every later frame look
    wide-eyed next to it: the portrait's eyes never closed. From a face at rest they close
    on the clip's next blink, and stay open between."""
    rest = L.eye_gap(astronaut_portrait.crop_landmarks)
    blink = 141 - BLINK  # the clip's next blink
    for neutral in ("rest", "first"):
        targets = _targets(astronaut_portrait, list(template[BLINK:]), neutral)
        eyes = np.array([L.eye_gap(t) for t in targets])
        if neutral == "rest":
            assert eyes[blink - 1 : blink + 3].min() < 0.4 * rest
            assert eyes[20:60].min() > 0.8 * rest
        else:  # --neutral first, as it was: wide-eyed through the next blink
            assert eyes[20:].min() > 0.8 * rest


def test_animate_from_a_clip_caught_mid_word_still_talks(data_dir, template):
    """The clip's first face mid-word (0.1 IOD open) taken as the neutral: the Mona Lisa's
    shut mouth opened only by what the driver opened past that. From a face at rest it opens
    as the driver's does."""
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.video_io import read_image

    portrait = enroll_images([read_image(data_dir / "portraits" / "mona_lisa.jpg")],
                             EnrollConfig(crop_size=256))
    targets = _targets(portrait, list(template[OPEN:]))
    mouth = np.array([L.mouth_gap(t) for t in targets])
    driver = np.array([L.mouth_gap(f) for f in template[OPEN:]])
    assert mouth[87 - OPEN : 90 - OPEN].max() > L.mouth_gap(portrait.crop_landmarks) + 0.08
    assert np.corrcoef(mouth, driver)[0, 1] > 0.9


def test_a_clip_at_rest_from_its_first_face_animates_exactly_as_before(astronaut_portrait,
                                                                      template):
    """Where the first face is at rest (the template, the shared clips) the neutral is the
    first face, so `--neutral rest` renders the same targets as `--neutral first`."""
    track = list(template[:60])
    assert np.array_equal(np.array(_targets(astronaut_portrait, track, "rest")),
                          np.array(_targets(astronaut_portrait, track, "first")))
