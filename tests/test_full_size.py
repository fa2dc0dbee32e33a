"""The full-size benchmark models have the published architectures (counted without allocating)."""

import pytest

# Parameter counts of runwayml/stable-diffusion-v1-5, stabilityai/sd-turbo (SD2.1-base),
# stabilityai/stable-diffusion-xl-base-1.0 and black-forest-labs/FLUX.1-dev (12B transformer, T5-XXL encoder).
PUBLISHED = {
    "flux": {"transformer": 11_901_408_320, "vae": 83_819_683, "text_encoder": 123_060_480,
             "text_encoder_2": 4_762_310_656},
    "sd": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
}


@pytest.mark.parametrize("family", ["sd", "sd2", "sdxl", "flux"])
def test_full_size_builds_match_the_published_parameter_counts(family, tmp_path):
    from accelerate import init_empty_weights

    from genimg.testing.full_size import build

    with init_empty_weights():
        pipe = build(family, tmp_path)
    for part in pipe.components.values():
        if hasattr(part, "tie_weights"):  # T5 shares its embedding; empty weights leave it untied
            part.tie_weights()
    counts = {name: sum(p.numel() for p in part.parameters())
              for name, part in pipe.components.items() if hasattr(part, "parameters")}
    assert counts == PUBLISHED[family]
