"""Shared fixtures: an offline, isolated Hugging Face cache and tiny models built once per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Set before anything imports huggingface_hub, which reads these once at import time: nothing in
# the tests may touch the network or the user's own caches and config.
_SANDBOX = Path(tempfile.mkdtemp(prefix="genimg-tests-"))
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)  # no cache or config left behind (but _built_once's)
os.environ.update({
    "HF_HOME": str(_SANDBOX / "hf"),
    "HF_HUB_CACHE": str(_SANDBOX / "hf" / "hub"),
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GENIMG_CACHE_DIR": str(_SANDBOX / "cache"),
    "GENIMG_CONFIG_DIR": str(_SANDBOX / "config"),
    "GENIMG_DATA_DIR": str(_SANDBOX / "data"),
    "GENIMG_STATE_DIR": str(_SANDBOX / "state"),
})
_BUILD_AFRESH = os.environ.get("GENIMG_TEST_CACHE") == "0"  # read before the loop below takes it away
for _name in [n for n in os.environ if n.startswith("GENIMG_")
              and n not in ("GENIMG_CONFIG_DIR", "GENIMG_CACHE_DIR", "GENIMG_DATA_DIR", "GENIMG_STATE_DIR")]:
    os.environ.pop(_name)  # a developer's own defaults (GENIMG_MODEL, GENIMG_CONFIG, …) must not reach the tests

import pytest  # noqa: E402

from genimg.testing.images import FAMILIES  # noqa: E402


@pytest.fixture(autouse=True)
def _host_cpu_without_bf16(monkeypatch):
    """`--preset auto` picks bf16 on CPUs with bf16 instructions and OpenVINO where it is installed; the
    tests must give the same pixels on every machine, so `auto` sees a plain CPU with torch alone unless
    a test fakes another device itself (`--preset cpu-openvino` still finds OpenVINO)."""
    from dataclasses import replace

    from genimg import device

    monkeypatch.setattr(device, "CPUINFO", "/nonexistent/cpuinfo")
    real = device.detect
    monkeypatch.setattr(device, "detect", lambda name=None: replace(real(name), openvino=False))


@pytest.fixture
def fake_device(monkeypatch):
    """Make genimg see the given device (what torch would report), and forget the tier picked before."""
    from genimg import device, presets

    def use(kind, total_gb=0.0, free_gb=None, bf16=False, openvino=False):
        info = device.DeviceInfo(kind, f"Fake {kind} {total_gb:g} GB", total_gb, total_gb if free_gb is None else free_gb,
                                 bf16, openvino)
        monkeypatch.setattr(device, "detect", lambda _=None: info)
        monkeypatch.setattr(presets, "_AUTO", {})

    return use


HUB_IDS = {"sd": "genimg-test/tiny-sd", "sdxl": "genimg-test/tiny-sdxl", "flux": "genimg-test/tiny-flux"}


def _built_once(name: str, build, into: Path) -> Path:
    """``build(folder)``'s files, made once and kept between runs, copied to ``into`` for this run (a test
    that changed them changes only its run's copy). Kept under the user's cache folder, keyed by the versions
    of the libraries that write them and by genimg/testing's own source; other keys' folders are removed
    when a new one is made. ``GENIMG_TEST_CACHE=0`` builds afresh every run."""
    import hashlib

    import diffusers
    import platformdirs
    import torch
    import transformers

    import genimg.testing

    if _BUILD_AFRESH:
        build(into)
        return into
    source = hashlib.sha256()
    for path in sorted(Path(genimg.testing.__file__).parent.glob("*.py")):
        source.update(path.read_bytes())
    key = f"{diffusers.__version__}-{transformers.__version__}-{torch.__version__}-{source.hexdigest()[:16]}"
    root = Path(platformdirs.user_cache_dir("genimg-tests"))
    kept = root / key / name
    if not (kept / ".complete").is_file():
        for stale in [*(p for p in root.glob("*") if p.name != key), *root.glob(f"{key}/.{name}-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # other versions', and what a killed run left
        kept.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=kept.parent))
        try:
            build(building)
            (building / ".complete").touch()
            try:
                building.rename(kept)  # whole or not at all: a run killed while building leaves a dot folder
            except OSError:
                if not (kept / ".complete").is_file():  # else another run beside this one was first
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(kept, into, ignore=shutil.ignore_patterns(".complete"))
    return into


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Family name -> a saved diffusers folder of the tiny model."""
    from genimg.testing.tiny_models import save_tiny

    def build(root):
        for family in FAMILIES:
            save_tiny(family, root / family)

    root = _built_once("tiny", build, tmp_path_factory.getbasetemp() / "tiny")
    return {family: root / family for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_controlnets(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """Family name -> a saved ControlNet folder for that family's tiny model."""
    from genimg.testing.tiny_models import save_tiny_controlnet

    def build(root):
        for family, folder in tiny_models.items():
            save_tiny_controlnet(folder, root / family)

    root = _built_once("controlnets", build, tmp_path_factory.getbasetemp() / "controlnets")
    return {family: root / family for family in tiny_models}


@pytest.fixture(scope="session")
def hub_models(tiny_models) -> dict[str, str]:
    """Family name -> a hub id served from the offline HF cache."""
    from genimg.testing.tiny_models import install_in_hf_cache

    for family, folder in tiny_models.items():
        install_in_hf_cache(folder, HUB_IDS[family], Path(os.environ["HF_HUB_CACHE"]))
    return dict(HUB_IDS)


@pytest.fixture(scope="session")
def sd_single_file(tiny_models, tmp_path_factory) -> Path:
    """The tiny SD1.5 model as one original-layout .safetensors checkpoint."""
    from diffusers import StableDiffusionPipeline

    from genimg.testing.single_file import save_sd_single_file

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    return save_sd_single_file(pipe, tmp_path_factory.mktemp("single") / "tiny-sd15.safetensors")


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys):
    """Run ``genimg ARGS`` in-process through the real entry point; returns code, stdout, stderr."""
    from genimg.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def launch_two():
    """`accelerate launch` of two processes, as the README tells users to start several GPUs; on a
    machine without CUDA, --multi_gpu starts the same torchrun processes, which meet over gloo."""
    import sys

    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where CUDA is, and are reported as skipped elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def eight_gb_fits(monkeypatch, tiny_models):
    """A fake 12 GB CUDA device whose pipelines run out of memory above the 8 GB tier; the presets asked for, in
    order, are returned."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    from transformers import CLIPTokenizer

    from genimg import device, presets
    from genimg import factory as factory_module
    from genimg.factory import LoadedModel

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo("cuda", "Fake 12 GB", 12.0, 11.0))
    monkeypatch.setattr(presets, "_AUTO", {})
    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")
    asked = []

    class Pipe:
        scheduler = None

        def __init__(self, fits):
            self.fits, self.tokenizer = fits, tokenizer

        def __call__(self, **kwargs):
            if not self.fits:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return SimpleNamespace(images=np.full((len(kwargs["prompt"]), 64, 64, 3), 0.25, dtype=np.float32))

    def get(self, ref, preset, choice=None, progress=None):
        asked.append(preset.name)
        return Pipe(fits=preset.vram_gb <= 8), LoadedModel(ref=ref, preset=preset, scheduler_config={})

    monkeypatch.setattr(factory_module.PipelineFactory, "get", get)
    return asked


def pytest_collection_finish(session):
    """Freeze what every test shares — the imported libraries and the collected tests — out of the garbage
    collector's sight. A full collection (genimg's factory runs one whenever it lets a model go, Python one
    whenever long-lived objects grow) otherwise walks torch's, diffusers' and transformers' half a million
    objects each time: 0.35 s, hundreds of times a run. What the tests make afterwards is collected as usual."""
    import gc

    import diffusers  # noqa: F401  the libraries nearly every test imports, before they are frozen
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import FluxPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: F401

    gc.collect()
    gc.freeze()
