"""genimg/masks.py on its own: masks from a file, alpha and a rectangle; outpaint canvases; the blend."""

import numpy as np
import pytest
from PIL import Image

from genimg.errors import UsageError
from genimg.masks import blend_mask, build_mask, composite, outpaint_canvas
from genimg.spec import MaskSpec


def test_a_rectangle_mask_is_white_exactly_there():
    mask = np.asarray(build_mask(MaskSpec(rect=(2, 3, 4, 5)), Image.new("RGB", (10, 12))))
    expected = np.zeros((12, 10), np.uint8)
    expected[3:8, 2:6] = 255
    assert np.array_equal(mask, expected)
    inverted = np.asarray(build_mask(MaskSpec(rect=(2, 3, 4, 5), invert=True), Image.new("RGB", (10, 12))))
    assert np.array_equal(inverted, 255 - expected)


def test_transparent_pixels_are_repainted_and_grey_is_thresholded(tmp_path):
    image = Image.new("RGBA", (4, 1))
    image.putdata([(0, 0, 0, 0), (0, 0, 0, 100), (0, 0, 0, 200), (0, 0, 0, 255)])
    assert np.asarray(build_mask(MaskSpec(from_alpha=True), image)).tolist() == [[255, 255, 0, 0]]
    with pytest.raises(UsageError, match="needs an image with transparency"):
        build_mask(MaskSpec(from_alpha=True), Image.new("RGB", (4, 1)))


@pytest.mark.parametrize("spec,words", [
    (MaskSpec(rect=(20, 0, 2, 2)), "lies outside the 10x10 image"),
    (MaskSpec(rect=(0, 0, 0, 2)), "lies outside"),
    (MaskSpec(), "give exactly one mask"),
    (MaskSpec(rect=(0, 0, 10, 10), invert=True), "the mask is empty"),
])
def test_bad_masks_are_one_clear_error(spec, words):
    with pytest.raises(UsageError, match=words):
        build_mask(spec, Image.new("RGB", (10, 10)))


def test_a_mask_file_of_another_aspect_ratio_is_refused_and_of_the_same_resized(tmp_path):
    Image.new("L", (20, 10), 255).save(tmp_path / "wide.png")
    with pytest.raises(UsageError, match="another aspect ratio"):
        build_mask(MaskSpec(path=str(tmp_path / "wide.png")), Image.new("RGB", (10, 10)))
    Image.new("L", (5, 5), 255).save(tmp_path / "small.png")
    said = []
    mask = build_mask(MaskSpec(path=str(tmp_path / "small.png")), Image.new("RGB", (10, 10)), said.append)
    assert mask.size == (10, 10) and said == ["the mask is 5x5; resized to the image's 10x10"]


def test_outpaint_grows_the_sides_asked_pads_to_the_factor_and_masks_the_seam():
    image = Image.new("RGB", (10, 8), (200, 10, 10))
    canvas, mask = outpaint_canvas(image, {"left": 4, "right": 0, "top": 0, "bottom": 0}, 8, "edge", overlap=2, seed=0)
    assert canvas.size == (16, 8)  # 10 + 4, padded to 16 on the grown side
    m = np.asarray(mask)
    assert (m[:, :8] == 255).all() and (m[:, 8:] == 0).all()  # 6 new columns + a 2-pixel seam
    assert (np.asarray(canvas) == (200, 10, 10)).all()  # edge fill stretches the edge colour
    noisy, _ = outpaint_canvas(image, {"left": 4, "right": 0, "top": 0, "bottom": 0}, 8, "noise", overlap=2, seed=0)
    again, _ = outpaint_canvas(image, {"left": 4, "right": 0, "top": 0, "bottom": 0}, 8, "noise", overlap=2, seed=0)
    assert np.array_equal(np.asarray(noisy), np.asarray(again))
    assert (np.asarray(noisy)[:, 6:] == (200, 10, 10)).all() and not (np.asarray(noisy)[:, :6] == (200, 10, 10)).all()


def test_the_composite_keeps_the_original_where_the_blended_mask_is_black():
    original, generated = Image.new("RGB", (20, 20), "red"), Image.new("RGB", (20, 20), "blue")
    mask = Image.new("L", (20, 20), 0)
    mask.paste(255, (4, 4, 20, 20))
    out = np.asarray(composite(original, generated, blend_mask(mask, 2)))
    assert (out[0, 0] == (255, 0, 0)).all() and (out[14, 14] == (0, 0, 255)).all()
    assert 0 < out[12, 4, 2] < 255  # softened across the edge
    assert np.array_equal(np.asarray(blend_mask(mask, 0)), np.asarray(mask))
