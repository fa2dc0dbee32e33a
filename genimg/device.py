"""What accelerator this process can use and how much memory it has free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" | "mps" | "cpu"
    name: str
    total_gb: float = 0.0
    free_gb: float = 0.0
    bf16: bool = False  # a CPU with bfloat16 instructions (AVX512-BF16 or AMX): bf16 runs ~2x fp32 there
    openvino: bool = False  # OpenVINO is installed: a CPU can run a UNet through it (the cpu-openvino preset)


def detect(device: str | None = None) -> DeviceInfo:
    """Describe ``device`` (e.g. ``cuda:1``), or the best available one when ``None``."""
    if device is None and not accelerator_possible():
        device = "cpu"  # known without importing torch (3-10 s): `genimg presets` answers at once here
    if device is None or not device.startswith("cpu"):
        import torch
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind = device.split(":")[0]
    if kind == "cuda":
        index = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(index)
        return DeviceInfo("cuda", torch.cuda.get_device_name(index), total / 2**30, free / 2**30)
    if kind == "mps":
        return DeviceInfo("mps", "Apple MPS")
    bf16 = cpu_has_bf16()
    return DeviceInfo("cpu", "CPU with AVX512-BF16/AMX" if bf16 else "CPU", bf16=bf16, openvino=openvino_missing() is None)


# What a machine with a GPU torch could use has: NVIDIA's driver, ROCm's kernel driver, WSL's GPU device.
GPU_DEVICE_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def accelerator_possible() -> bool:
    """False only when this is Linux without any GPU driver, so torch would find none; elsewhere
    (macOS's MPS, Windows) only torch can tell."""
    import os
    import sys

    return not sys.platform.startswith("linux") or any(os.path.exists(p) for p in GPU_DEVICE_FILES)


# The x86 flags of native bfloat16 arithmetic. Without them torch emulates bf16 through fp32 and it
# runs slower than fp32 itself, so only these CPUs get the bf16 preset.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


CPUINFO = "/proc/cpuinfo"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (Linux's cpuinfo; empty elsewhere)."""
    try:
        text = open(cpuinfo or CPUINFO, encoding="utf-8", errors="replace").read()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has native bfloat16 instructions (read from Linux's cpuinfo; False elsewhere)."""
    return bool(cpu_flags(cpuinfo) & set(BF16_FLAGS))


def cpu_kind(cpuinfo: str | None = None) -> str:
    """What the CPU routes are tuned by: "amx" (AMX-BF16 tile units: Intel Xeon from Sapphire Rapids),
    "avx512-bf16" (bf16 dot products in AVX-512: AMD Zen 4 and later, Intel Cooper Lake), else "fp32"."""
    flags = cpu_flags(cpuinfo)
    if "amx_bf16" in flags:
        return "amx"
    return "avx512-bf16" if "avx512_bf16" in flags else "fp32"


def openvino_missing() -> str | None:
    """Why the OpenVINO route cannot run here, or None (asked without importing OpenVINO)."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install openvino)"
    return None


def compiler_missing(device: str) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` on this machine, or None when it can.
    Inductor writes C++ for CPUs and Triton for CUDA; without them the first step would crash."""
    import importlib.util
    import os
    import shutil

    kind = device.split(":")[0]
    if kind == "mps":
        return "torch.compile's inductor does not generate code for MPS"
    if kind == "cuda":
        return None if importlib.util.find_spec("triton") else "triton (inductor's GPU code generator) is not installed"
    if any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "clang++", "c++", "cl") if c):
        return None
    return "no C++ compiler (g++, clang++ or MSVC's cl) for inductor's CPU kernels"
