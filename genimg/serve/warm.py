"""The models a server keeps warm between jobs: up to ``--keep`` loaded models, the least recently used let
go first, and fewer when the device has no room for the next one's weights."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path


class WarmModels:
    """Up to ``keep`` loaded models (one PipelineFactory each), the least recently used let go first, and
    the last upscaler and face restorer used."""

    def __init__(self, keep: int):
        self.keep = max(1, keep)
        self.factories: OrderedDict = OrderedDict()
        self.upscalers: dict = {}  # "upscaler" or "face" -> (load key, the loaded one)

    def upscaler_for(self, ref, settings, progress=None):
        """The upscaler (or face restorer) ``upscale_files`` asks for: the one kept when the request is the same."""
        from genimg.upscale.run import load, load_key

        slot, key = "face" if ref.kind == "face" else "upscaler", load_key(ref, settings)
        if self.upscalers.get(slot, (None,))[0] != key:
            self.upscalers.pop(slot, None)  # let the old one go before the new one loads
            self.upscalers[slot] = (key, load(ref, settings, progress))
        return self.upscalers[slot][1]

    def factory_for(self, plan):
        """The factory of ``plan``'s model: the one kept, or a new one after letting go of the least
        recently used while there are ``keep`` or the device has no room for the new model's weights."""
        from genimg.factory import PipelineFactory

        key = (plan.ref.name, plan.ref.location, plan.ref.vae, plan.ref.denoiser, plan.preset.name)
        if key in self.factories:
            self.factories.move_to_end(key)
        else:
            need = plan_bytes(plan) * HEADROOM
            while self.factories and (len(self.factories) >= self.keep or memory_free(plan.preset.device) < need):
                _, old = self.factories.popitem(last=False)
                old.release()
            self.factories[key] = PipelineFactory()
        return self.factories[key]

    def loaded(self) -> list[str]:
        return [key[0] for key in self.factories] + [key[0].name for key, _ in self.upscalers.values()]


HEADROOM = 1.3  # a model in memory takes its weights and about a third more (activations, the VAE's decode)
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".ckpt", ".pt", ".pth")


def weights_bytes(location: str) -> int:
    """The size of a model's weight files: a folder's or a file's here, a hub model's in the cache."""
    path = Path(location).expanduser()
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    from genimg.models.cache import cached_repos

    return next((repo.size_bytes for repo in cached_repos() if repo.repo == location), 0)


def plan_bytes(plan) -> int:
    """What a plan loads: the model's weights, its ControlNets' and its preprocessors' (their weight files)."""
    total = weights_bytes(plan.ref.location)
    for control in plan.controls:
        if control.controlnet is not None and control.controlnet.location != plan.ref.location:
            total += weights_bytes(control.controlnet.location)
        total += preprocessor_bytes(control.spec.type)
    return total


def preprocessor_bytes(kind: str) -> int:
    """The weight files of a control type's preprocessor (0: none, or not on this machine yet)."""
    from genimg.control import weights_folder
    from genimg.errors import UsageError
    from genimg.preprocessors import preprocessors

    entry = preprocessors().get(kind)
    if entry is None or not entry.files:
        return 0
    try:
        folder = weights_folder(entry, allow_pickle=True)
    except UsageError:
        return 0
    return sum((folder / f).stat().st_size for f in entry.files if (folder / f).is_file())


def memory_free(device: str) -> int:
    """Bytes the device can still take: the GPU's free memory and the blocks torch's allocator keeps cached
    but unused (free to this process, not to the driver), or the RAM the system can give."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return torch.cuda.mem_get_info(index)[0] + cached
    import psutil

    return psutil.virtual_memory().available
