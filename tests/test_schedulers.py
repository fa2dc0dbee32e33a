import json

import pytest

from genimg.errors import UsageError
from genimg.schedulers import build, lookup, schedulers


# A1111's sampler names and the diffusers scheduler that is each one, written from diffusers'
# "Schedulers" documentation (its table of A1111/k-diffusion equivalents), not from schedulers.toml.
A1111 = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler Karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": False}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": False}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": False}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": False}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {"use_karras_sigmas": False}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "PLMS": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}
# Not A1111 names: the samplers the few-step models' cards set (SDXL-Lightning, Hyper-SD).
FEW_STEP = {
    "Euler trailing": ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "DDIM trailing": ("DDIMScheduler", {"timestep_spacing": "trailing"}),
}
FLOW = {
    "FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "FlowMatch Euler Karras": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "FlowMatch Heun": ("FlowMatchHeunDiscreteScheduler", {}),
}


@pytest.mark.parametrize("name,family", [(n, "sd") for n in sorted({**A1111, **FEW_STEP})] + [(n, "flux") for n in sorted(FLOW)])
def test_each_a1111_name_builds_the_scheduler_a1111_users_mean(name, family, tiny_models):
    if schedulers()[name].requires:
        pytest.importorskip(schedulers()[name].requires)
    config = json.loads((tiny_models[family] / "scheduler" / "scheduler_config.json").read_text())
    scheduler = build(lookup(name, family), config)
    class_name, settings = {**A1111, **FEW_STEP, **FLOW}[name]
    assert type(scheduler).__name__ == class_name
    for key, value in settings.items():
        assert scheduler.config[key] == value, key


def test_every_shipped_name_is_in_the_reference_table():
    assert set(schedulers()) == set(A1111) | set(FEW_STEP) | set(FLOW)


def test_the_names_users_know_are_there():
    assert {"Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM", "UniPC", "LMS", "Heun", "LCM"} <= set(schedulers())


def test_names_are_case_insensitive():
    assert lookup("dpm++ 2m karras", "sdxl").name == "DPM++ 2M Karras"


def test_sd_schedulers_are_refused_for_flux():
    with pytest.raises(UsageError, match="flow-matching"):
        lookup("Euler a", "flux")


def test_schedulers_command(cli):
    result = cli("schedulers", "--json")
    assert result.code == 0 and json.loads(result.out)["Euler a"]["class"] == "EulerAncestralDiscreteScheduler"
