"""A1111's variation seeds and seed resize: the initial noise of an image, slerped from its seed's toward its
variation seed's and drawn as if the image had another size, given to the pipeline as its ``latents``.

Each noise is drawn exactly as the pipeline would draw it (diffusers' ``randn_tensor`` on the image's CPU
generator, in the denoiser's dtype, in the line's shape), so strength 0 is the plain seed's image and
strength 1 the variation seed's, bit for bit."""

from __future__ import annotations


def slerp(val: float, low, high):
    """A1111's spherical interpolation (``modules/processing.py``): norms along dim 1, and its linear
    fallback — with its own order of the terms — where the two are nearly parallel."""
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def _draw(seed: int, shape: tuple, dtype):
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor((1, *shape), generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)[0]


def initial_noise(pipe, line, spec, images, dtype):
    """The ``latents`` argument for ``images`` (PlannedImages) of ``spec``: A1111's ``create_random_tensors``."""
    import torch

    shape = line.noise_shape(pipe, spec.width, spec.height)
    seed_shape = shape
    if spec.seed_resize_from:
        width, height = (int(v) for v in spec.seed_resize_from.split("x"))
        seed_shape = line.noise_shape(pipe, width, height)
    noises = []
    for image in images:
        noise = _draw(image.seed, seed_shape, dtype)
        if spec.variation_strength and image.variation_seed is not None:
            varied = slerp(spec.variation_strength, noise.float(), _draw(image.variation_seed, seed_shape, dtype).float())
            noise = varied.to(dtype)
        if seed_shape != shape:  # the seed's noise centred in (or cut to) the image's, the rest its own draw
            noise = _centred(noise, _draw(image.seed, shape, dtype))
        noises.append(noise)
    return line.noise_as_latents(pipe, torch.stack(noises))


def _centred(small, x):
    """A1111's paste of the noise drawn at the resize-from size into the noise of the image's size."""
    dy, dx = (x.shape[1] - small.shape[1]) // 2, (x.shape[2] - small.shape[2]) // 2
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    ty, tx = max(dy, 0), max(dx, 0)
    sy, sx = max(-dy, 0), max(-dx, 0)
    x = x.clone()
    x[:, ty:ty + h, tx:tx + w] = small[:, sy:sy + h, sx:sx + w]
    return x
