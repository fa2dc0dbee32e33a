"""The full-size benchmark models have the published architectures (counted without allocating)."""

import pytest

# Parameter counts of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0.
PUBLISHED = {
    "sd": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
}


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_full_size_builds_match_the_published_parameter_counts(family, tmp_path):
    from accelerate import init_empty_weights

    from genimg.testing.full_size import build

    with init_empty_weights():
        pipe = build(family, tmp_path)
    counts = {name: sum(p.numel() for p in part.parameters())
              for name, part in pipe.components.items() if hasattr(part, "parameters")}
    assert counts == PUBLISHED[family]
