"""The one place images become files: every PNG genimg writes — generated here, made by a server, a control
map, a contact sheet, an upscale — goes through an :class:`ImageSink`, so each is written whole or not at
all (a temporary file renamed), with the umask's mode, never over an existing file unless asked, and a
generated image always with its settings in the metadata chunks."""

from __future__ import annotations

from pathlib import Path

from genimg.errors import RunFailure
from genimg.files import atomic_save

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageSink:
    def __init__(self, overwrite: bool = False, served: bool = False):
        self.overwrite = overwrite
        self.served = served  # made by a server for a client: no path of the server's machine in the metadata

    def generated(self, made, path: Path | None = None) -> Path:
        """A :class:`~genimg.generation.GeneratedImage` at its planned path (or ``path``), its spec and
        A1111's text in the metadata."""
        from genimg.output.metadata import pnginfo

        info = pnginfo(made, self.served)
        return atomic_save(Path(path or made.path), lambda tmp: made.image.save(tmp, format="PNG", pnginfo=info),
                           self.overwrite)

    def received(self, data: bytes, path: Path) -> Path:
        """A PNG made elsewhere (a genimg server wrote its metadata), as it came."""
        if not data.startswith(PNG_SIGNATURE):
            raise RunFailure(f"the server sent something that is not a PNG for {Path(path).name}")
        return atomic_save(Path(path), lambda tmp: tmp.write_bytes(data), self.overwrite)

    def picture(self, picture, path: Path, info=None) -> Path:
        """A PIL image that is not a generation of its own (a control map, a grid, an upscale whose
        ``info`` carries its source's settings)."""
        return atomic_save(Path(path), lambda tmp: picture.save(tmp, format="PNG", pnginfo=info), self.overwrite)
