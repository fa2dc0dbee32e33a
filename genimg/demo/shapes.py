"""A procedural, captioned dataset of coloured shapes, deterministic from a seed.

Every image is one shape (circle, square, triangle, star) of one colour, of some size and place,
on a plain background of another colour, with a caption from a small grammar such as
"a small red circle in the top left corner on a blue background". It trains the built-in demo
model and the teaching DDPM, and its palette is what the quality analyser measures against.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 225),
    "yellow": (245, 225, 40),
    "orange": (250, 140, 20),
    "purple": (140, 45, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": 0.14, "": 0.22, "large": 0.33}  # radius as a fraction of the image side
POSITIONS = {
    "in the top left corner": (0.27, 0.27),
    "in the top right corner": (0.73, 0.27),
    "in the bottom left corner": (0.27, 0.73),
    "in the bottom right corner": (0.73, 0.73),
    "in the center": (0.5, 0.5),
}
WORDS = tuple(sorted({w for text in (*COLOURS, *SHAPES, *SIZES, *POSITIONS, "a an on with background big")
                      for w in text.split()}))


@dataclass(frozen=True)
class ShapeScene:
    shape: str
    colour: str
    background: str
    size: str  # "small", "" (medium) or "large"
    position: str | None  # a key of POSITIONS, or None for anywhere
    cx: float  # centre, as fractions of the side
    cy: float
    angle: float  # rotation in degrees (squares, triangles, stars)

    def caption(self, template: int = 0, mention_size: bool = True, mention_position: bool = True) -> str:
        size = f"{self.size} " if self.size and mention_size else ""
        where = f" {self.position}" if self.position and mention_position else ""
        thing = f"{size}{self.colour} {self.shape}"
        if template == 1:
            return f"{_article(self.background)} {self.background} background with {_article(thing)} {thing}{where}"
        return f"{_article(thing)} {thing}{where} on {_article(self.background)} {self.background} background"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def random_scene(rng: random.Random) -> ShapeScene:
    colour = rng.choice(list(COLOURS))
    background = rng.choice([c for c in COLOURS if c != colour])
    size = rng.choice(list(SIZES))
    radius = SIZES[size]
    position = rng.choice([*POSITIONS, None, None])
    if position is None:
        cx, cy = (rng.uniform(radius + 0.04, 0.96 - radius) for _ in range(2))
    else:
        jitter = 0.03
        px, py = POSITIONS[position]
        # Large shapes cannot sit deep in a corner; keep them inside the frame.
        cx = min(max(px + rng.uniform(-jitter, jitter), radius + 0.02), 0.98 - radius)
        cy = min(max(py + rng.uniform(-jitter, jitter), radius + 0.02), 0.98 - radius)
    return ShapeScene(rng.choice(SHAPES), colour, background, size, position, cx, cy, rng.uniform(-15, 15))


def prompt_scene(rng: random.Random) -> ShapeScene:
    """A scene for evaluation prompts (the same grammar as training)."""
    return random_scene(rng)


def polygon(scene: ShapeScene, side: int) -> list[tuple[float, float]] | None:
    """The outline of the shape in pixels, or None for a circle."""
    r = SIZES[scene.size] * side
    cx, cy = scene.cx * side, scene.cy * side
    a = math.radians(scene.angle)
    if scene.shape == "square":
        pts = [(math.cos(a + math.pi / 4 + k * math.pi / 2) * r * 1.1, math.sin(a + math.pi / 4 + k * math.pi / 2) * r * 1.1)
               for k in range(4)]
    elif scene.shape == "triangle":
        pts = [(math.cos(a - math.pi / 2 + k * 2 * math.pi / 3) * r * 1.2, math.sin(a - math.pi / 2 + k * 2 * math.pi / 3) * r * 1.2 + r * 0.15)
               for k in range(3)]
    elif scene.shape == "star":
        pts = [(math.cos(a - math.pi / 2 + k * math.pi / 5) * r * (1.2 if k % 2 == 0 else 0.5),
                math.sin(a - math.pi / 2 + k * math.pi / 5) * r * (1.2 if k % 2 == 0 else 0.5)) for k in range(10)]
    else:
        return None
    return [(cx + x, cy + y) for x, y in pts]


def render(scene: ShapeScene, side: int = 64, supersample: int = 4):
    """The scene as an RGB PIL image of ``side`` pixels (drawn large, then downsampled for smooth edges)."""
    from PIL import Image, ImageDraw

    big = side * supersample
    image = Image.new("RGB", (big, big), COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    outline = polygon(scene, big)
    if outline is None:
        r = SIZES[scene.size] * big
        cx, cy = scene.cx * big, scene.cy * big
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=COLOURS[scene.colour])
    else:
        draw.polygon(outline, fill=COLOURS[scene.colour])
    return image.resize((side, side), Image.LANCZOS)


def dataset(count: int, seed: int = 0, side: int = 64):
    """``count`` (image, scene) pairs, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        scene = random_scene(rng)
        yield render(scene, side), scene


def training_caption(scene: ShapeScene, rng: random.Random) -> str:
    """Captions vary in template and in which details they mention, so short prompts work too."""
    return scene.caption(template=rng.random() < 0.3, mention_size=rng.random() < 0.7,
                         mention_position=rng.random() < 0.7)
