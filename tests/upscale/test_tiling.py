"""genimg/upscale/tiling.py on its own: where the tiles go, and that blending them back is exact for a
function that works pixel by pixel."""

import pytest
import torch

from genimg.upscale.tiling import positions, tiled


@pytest.mark.parametrize("size,tile,overlap,expected", [
    (100, 200, 16, [0]), (100, 100, 16, [0]), (100, 40, 8, [0, 32, 60]), (64, 32, 0, [0, 32]),
])
def test_tiles_cover_the_axis_and_the_last_is_flush_with_the_end(size, tile, overlap, expected):
    starts = positions(size, tile, overlap)
    assert starts == expected and starts[-1] + min(tile, size) == size


def test_a_pixelwise_upscale_in_tiles_equals_the_whole_image():
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))

    def upscale(t):  # nearest-neighbour x2, then a pixelwise curve: no neighbourhood, so tiling is exact
        return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest") ** 2

    seen = []
    result = tiled(x, upscale, 2, 16, 6, lambda event, **info: seen.append((info["step"], info["total"])))
    assert torch.allclose(result, upscale(x), atol=1e-6)
    assert seen[-1][0] == seen[-1][1] == len(positions(37, 16, 6)) * len(positions(53, 16, 6))


def test_no_tile_or_a_tile_larger_than_the_image_runs_it_whole():
    calls = []
    x = torch.rand(1, 3, 8, 8)
    tiled(x, lambda t: calls.append(t.shape) or t, 1, 0, 4)
    tiled(x, lambda t: calls.append(t.shape) or t, 1, 64, 4)
    assert calls == [x.shape, x.shape]
