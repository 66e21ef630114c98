"""The review copy: an optional slate, then every cut frame with burn-ins in the corners."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from assemble_support import (
    RECORD_START,
    build_cut,
    changed_fraction,
    count_colour,
    decode,
    mean_abs_diff,
    nominal_timecode,
    record_start_frame,
    region,
)
from synth import level_of, picture_level, read_code

from previz.assemble import cards

CORNERS = {
    "top-left": (0.0, 0.0, 0.2, 0.08),
    "top-right": (0.8, 0.0, 1.0, 0.08),
    "bottom-right": (0.8, 0.92, 1.0, 1.0),
    "bottom-left": (0.0, 0.92, 0.2, 1.0),
}
CENTRE = (0.25, 0.3, 0.75, 0.8)
FLAG_BAND = (0.0, 0.025, 0.6, 0.09)  # beside the shot label, below a placeholder's red stripe


@pytest.mark.parametrize(("fps", "slate_seconds"), [("23.976", 2.0), ("24", 1.0), ("25", 1.0),
                                                    ("29.97", 0.0), ("30", 2.0)])
def test_review_copy_is_the_slate_then_every_cut_frame(tmp_path, fps, slate_seconds):
    plan, _, cut = build_cut(tmp_path, [(30, None), (20, "dissolve 6"), (25, "out 5")],
                             fps=fps, slate_seconds=slate_seconds)
    rate = plan.fps_fraction
    edit, review = decode(cut.media), decode(cut.review)
    slate = round(Fraction(slate_seconds) * rate)
    assert cut.manifest["cut"]["slate_frames"] == slate
    # the editorial cut: exactly the plan's frames, first frame at 01:00:00:00, no slate
    assert len(edit["images"]) == plan.frames
    assert edit["timecode"] == RECORD_START and edit["rate"] == rate
    assert read_code(edit["images"][0]) == (1, 0)
    # the review copy: the slate, then the plan's frames; the cut still starts at 01:00:00:00
    assert len(review["images"]) == slate + plan.frames
    assert review["rate"] == rate and review["size"] == (plan.width, plan.height)
    assert review["timecode"] == nominal_timecode(record_start_frame(rate) - slate, rate)
    # the tail fades to black (in the cut and so in the review copy), and the page says so
    assert edit["images"][-1].mean() < edit["images"][-6].mean() / 4
    assert "fade_to_black 5f" in cut.review_page.read_text()
    # the picture is the cut's, frame for frame
    for number in [*range(0, plan.frames, 7), plan.frames - 1]:
        assert mean_abs_diff(region(review["images"][slate + number], CENTRE),
                             region(edit["images"][number], CENTRE)) < 2, number
    if slate:
        cards_ = review["images"][:slate]
        assert all(mean_abs_diff(card, cards_[0]) < 2 for card in cards_)  # one still card
        assert read_code(cards_[0]) is None  # not a take
        assert cards_[0].std() > 15  # it has writing on it
        assert mean_abs_diff(cards_[0], review["images"][slate]) > 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same edit twice at 29.97, 512x288: A with every shot rendered; B with SH0020 a draft
    and SH0030 failed."""
    layout = [(30, None), (24, None), (30, None)]
    folder = tmp_path_factory.mktemp("review-copy")
    plan, takes, a = build_cut(folder / "A", layout, fps="29.97", size=(512, 288))
    _, _, b = build_cut(folder / "B", layout, fps="29.97", size=(512, 288), draft=[1],
                        failed=[2], errors={2: "CUDA out of memory"})
    slate = a.manifest["cut"]["slate_frames"]
    assert slate == b.manifest["cut"]["slate_frames"] == 60
    return {"plan": plan, "takes": takes, "slate": slate,
            "A": {"cut": a, "review": decode(a.review)["images"], "edit": decode(a.media)["images"]},
            "B": {"cut": b, "review": decode(b.review)["images"], "edit": decode(b.media)["images"]}}


def take_frames(pair, index: int) -> list[np.ndarray]:
    shot = pair["plan"].shots[index]
    return decode(pair["takes"][shot.id].path)["images"]


@pytest.mark.parametrize("number", [0, 17, 30, 41, 53, 54, 83])
def test_burn_ins_sit_in_the_corners_and_leave_the_picture(pair, number):
    plan = pair["plan"]
    index = max(i for i, s in enumerate(plan.shots) if s.record_in <= number)
    source = take_frames(pair, index)[number - plan.shots[index].record_in]
    assert read_code(source) == (index + 1, number - plan.shots[index].record_in)
    review = pair["A"]["review"][pair["slate"] + number]
    for corner, box in CORNERS.items():
        assert changed_fraction(region(review, box), region(source, box)) > 0.03, corner
    assert mean_abs_diff(region(review, CENTRE), region(source, CENTRE)) < 2


@pytest.mark.parametrize("number", [0, 1, 29, 30, 59, 83])
def test_top_right_shows_the_sequence_timecode(pair, number):
    """The top-right burn-in is the record timecode of the frame: drawn over the cut's frame it
    matches the review copy there, and the neighbouring timecodes do not."""
    plan = pair["plan"]
    rate = plan.fps_fraction
    review = pair["A"]["review"][pair["slate"] + number].astype(np.int16)
    frame = pair["A"]["edit"][number]
    burn = cards.BurnIn(plan.width, plan.height)
    label = cards.ShotLabel("SH", "model")
    drawn = {}
    for candidate in (number - 1, number, number + 1, number + 2):
        image = frame.copy()
        burn.draw(image, label, nominal_timecode(record_start_frame(rate) + candidate, rate), "")
        drawn[candidate] = region(image, CORNERS["top-right"]).astype(np.int16)
    stack = np.stack(list(drawn.values()))
    digits = (stack.max(axis=0) - stack.min(axis=0)).max(axis=-1) > 60  # where they differ
    assert digits.sum() > 10
    target = region(review, CORNERS["top-right"])
    error = {c: float(np.abs(image - target)[digits].mean()) for c, image in drawn.items()}
    assert error[number] < 15, error
    assert all(error[c] > error[number] + 15 for c in error if c != number), error


def test_frame_counter_ticks_bottom_right(pair):
    box = CORNERS["bottom-right"]
    source = take_frames(pair, 0)
    review = pair["A"]["review"][pair["slate"]:]
    for number in range(1, 12):
        # the take's corner does not change from frame to frame; the review copy's does
        assert mean_abs_diff(region(source[number], box), region(source[number - 1], box)) < 1
        assert changed_fraction(region(review[number], box),
                                region(review[number - 1], box)) > 0.005, number


@pytest.mark.parametrize("number", [32, 45, 53])
def test_a_draft_shot_says_draft(pair, number):
    """SH0020 shows the same take in A (rendered) and B (draft): only B says DRAFT."""
    rendered = pair["A"]["review"][pair["slate"] + number]
    draft = pair["B"]["review"][pair["slate"] + number]
    assert mean_abs_diff(region(draft, CENTRE), region(rendered, CENTRE)) < 2
    assert changed_fraction(region(draft, FLAG_BAND), region(rendered, FLAG_BAND)) > 0.02
    assert count_colour(region(draft, FLAG_BAND), "amber") > 150
    assert count_colour(region(rendered, FLAG_BAND), "amber") == 0
    # the editorial media carries no burn-ins: draft and rendered cuts are the same pixels
    assert mean_abs_diff(pair["B"]["edit"][number], pair["A"]["edit"][number]) < 1


@pytest.mark.parametrize("number", [54, 70, 83])
def test_a_failed_shot_is_a_placeholder_that_says_so(pair, number):
    review_b = pair["B"]["review"][pair["slate"] + number]
    edit_b = pair["B"]["edit"][number]
    review_a = pair["A"]["review"][pair["slate"] + number]
    # the card, not the take: no frame code, not the take's grey, not black
    assert read_code(edit_b) is None
    assert abs(picture_level(edit_b) - level_of(3)) > 20 and edit_b.mean() > 15
    # the review copy flags it in red beside the shot label; the editorial card has no flag,
    # and the rendered shot in A none either
    assert count_colour(region(review_b, FLAG_BAND), "red") > 500
    assert count_colour(region(edit_b, FLAG_BAND), "red") < 50
    assert count_colour(region(review_a, FLAG_BAND), "red") == 0
    assert changed_fraction(region(review_b, FLAG_BAND), region(edit_b, FLAG_BAND)) > 0.1
