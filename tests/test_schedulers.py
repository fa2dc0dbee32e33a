import json

import pytest

from genimg.errors import UsageError
from genimg.schedulers import build, lookup, schedulers


@pytest.mark.parametrize("name", [n for n, s in schedulers().items() if "sd" in s.families])
def test_every_sd_scheduler_builds_from_an_sd_config(name, tiny_models):
    if schedulers()[name].requires:
        pytest.importorskip(schedulers()[name].requires)
    config = json.loads((tiny_models["sd"] / "scheduler" / "scheduler_config.json").read_text())
    scheduler = build(lookup(name, "sd"), config)
    assert type(scheduler).__name__ == schedulers()[name].class_name
    for key, value in schedulers()[name].config.items():
        assert scheduler.config[key] == value


@pytest.mark.parametrize("name", [n for n, s in schedulers().items() if "flux" in s.families])
def test_flow_schedulers_build_from_a_flux_config(name, tiny_models):
    config = json.loads((tiny_models["flux"] / "scheduler" / "scheduler_config.json").read_text())
    assert type(build(lookup(name, "flux"), config)).__name__ == schedulers()[name].class_name


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
