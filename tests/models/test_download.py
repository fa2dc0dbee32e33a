"""genimg models download against a real HTTP server on 127.0.0.1 that answers as the hub does
(genimg.testing.hub_server), reached through the endpoint setting: which files are fetched, the fp16
variant, resuming, gated and missing repositories, disk space."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genimg.testing.images import pixels
from genimg.testing.hub_server import HubState, LocalHub

UNET = "unet/diffusion_pytorch_model.safetensors"
UNET_FP16 = "unet/diffusion_pytorch_model.fp16.safetensors"


@pytest.fixture(scope="session")
def served_repo(tiny_models, tmp_path_factory) -> Path:
    """The tiny SD1.5 model laid out as hub repositories are: with fp16 variants of its weights, pickle
    duplicates, and a single-file checkpoint beside the folders."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("served") / "repo"
    shutil.copytree(tiny_models["sd"], folder)
    for weights in list(folder.glob("*/*.safetensors")):
        state = load_file(str(weights))
        save_file({k: v.half() for k, v in state.items()}, str(weights.with_name(weights.stem + ".fp16.safetensors")))
        torch.save(state, weights.with_suffix(".bin"))
    (folder / "tiny-sd15.safetensors").write_bytes(b"\0" * 4096)  # what the folders already hold, as one file
    return folder


@pytest.fixture
def hub(served_repo, monkeypatch):
    """A started local hub serving ``genimg-test/served-*`` repos; yields its state."""
    from huggingface_hub import constants

    from genimg.models import hub as genimg_hub

    state = HubState({})
    with LocalHub(state) as url:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        # What HF_ENDPOINT sets when huggingface_hub is imported (the tests imported it long before).
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        genimg_hub.forget_probes()
        yield state


def _fetched(state) -> set[str]:
    return {path.split("/resolve/")[1].split("/", 1)[1] for method, path, _ in state.requests
            if method == "GET" and "/resolve/" in path}


def test_only_the_files_the_pipeline_loads_and_the_fp16_variant(cli, hub, served_repo, tmp_path):
    hub.repos["genimg-test/served-fp16"] = served_repo
    result = cli("models", "download", "genimg-test/served-fp16", "--precision", "fp16", "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    fetched = _fetched(hub)
    assert UNET_FP16 in fetched and UNET not in fetched and "model_index.json" in fetched
    assert not any(f.endswith(".bin") for f in fetched) and "tiny-sd15.safetensors" not in fetched
    assert {f.split("/")[0] for f in fetched if f.endswith(".safetensors")} == {"unet", "vae", "text_encoder"}
    assert report["fp16"] is True and set(report["files"]) == fetched
    # What was fetched loads, offline, as the fp16 variant, and draws the model's picture.
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
    common = ("x", "-W", "64", "-H", "64", "--steps", "2", "--seed", "1", "--dtype", "fp32")
    assert cli("txt2img", *common, "-m", "genimg-test/served-fp16", "-o", tmp_path / "hub.png").code == 0
    assert cli("txt2img", *common, "-m", served_repo, "-o", tmp_path / "folder.png").code == 0
    assert np.abs(pixels(tmp_path / "hub.png").astype(int) - pixels(tmp_path / "folder.png").astype(int)).mean() < 2


def test_components_loaded_as_none_and_folders_the_index_does_not_name_are_not_fetched(cli, hub, served_repo,
                                                                                      tmp_path):
    from safetensors.torch import save_file

    repo = tmp_path / "with-checker"
    shutil.copytree(served_repo, repo)
    index = json.loads((repo / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    (repo / "model_index.json").write_text(json.dumps(index))
    import torch

    for folder in ("safety_checker", "old_unet"):
        (repo / folder).mkdir()
        (repo / folder / "config.json").write_text("{}")
        save_file({"w": torch.zeros(4)}, str(repo / folder / "model.safetensors"))
    hub.repos["genimg-test/served-checker"] = repo
    result = cli("models", "download", "genimg-test/served-checker", "--precision", "fp32", "--json")
    assert result.code == 0, result
    folders = {f.split("/")[0] for f in _fetched(hub) if "/" in f}
    assert folders == {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}


def test_full_precision_takes_the_plain_weights(cli, hub, served_repo):
    hub.repos["genimg-test/served-fp32"] = served_repo
    result = cli("models", "download", "genimg-test/served-fp32", "--precision", "fp32")
    assert result.code == 0, result
    fetched = _fetched(hub)
    assert UNET in fetched and UNET_FP16 not in fetched and not any(f.endswith(".bin") for f in fetched)


def test_a_file_cut_off_part_way_is_resumed_not_restarted(cli, hub, served_repo, monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub writes 10 MB at a time; the tiny UNet is smaller, so it would start again from 0.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 2**16)
    hub.repos["genimg-test/served-cut"] = served_repo
    hub.cut_once.add(UNET)
    assert cli("models", "download", "genimg-test/served-cut", "--precision", "fp32").code == 0
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(UNET)]
    size = (served_repo / UNET).stat().st_size
    assert ranges[0] is None and ranges[-1].startswith("bytes=")
    assert 0 < int(ranges[-1][6:-1]) <= size // 2  # the second request asked for the rest (from the last whole chunk)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache("genimg-test/served-cut", UNET)
    assert Path(cached).read_bytes() == (served_repo / UNET).read_bytes()


def test_a_failed_download_leaves_nothing_a_load_would_take(cli, hub, served_repo):
    from huggingface_hub import try_to_load_from_cache

    hub.repos["genimg-test/served-down"] = served_repo
    hub.refuse.add(UNET)
    failed = cli("models", "download", "genimg-test/served-down", "--precision", "fp32")
    assert failed.code == 1 and "run the command again to resume" in failed.err and failed.err.count("\n") == 1
    assert not isinstance(try_to_load_from_cache("genimg-test/served-down", UNET), str)
    hub.refuse.clear()
    assert cli("models", "download", "genimg-test/served-down", "--precision", "fp32").code == 0
    assert isinstance(try_to_load_from_cache("genimg-test/served-down", UNET), str)


@pytest.mark.parametrize("repo,words", [
    ("genimg-test/gated", ("is gated: accept its licence at", "HF_TOKEN")),
    ("genimg-test/no-such-model", ("does not exist on",)),
])
def test_gated_and_missing_repositories_are_one_line(cli, hub, served_repo, repo, words):
    hub.repos["genimg-test/gated"] = served_repo
    hub.gated.add("genimg-test/gated")
    result = cli("models", "download", repo)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words)
    assert not _fetched(hub)


def test_no_room_for_the_files_is_said_before_fetching(cli, hub, served_repo, monkeypatch):
    from genimg.models import download

    hub.repos["genimg-test/served-full"] = served_repo
    monkeypatch.setattr(download, "free_space", lambda folder: 1000)
    result = cli("models", "download", "genimg-test/served-full", "--precision", "fp32")
    assert result.code == 2 and "GB free; free some space" in result.err, result
    assert _fetched(hub) == {"model_index.json"}  # a few hundred bytes naming the components; no weights


def test_offline_is_one_line(cli, monkeypatch):
    result = cli("models", "download", "genimg-test/anything")
    assert result.code == 2 and "HF_HUB_OFFLINE is set" in result.err


@pytest.mark.parametrize("half,expected", [(True, {"a/w.fp16.safetensors", "a/c.json", "model_index.json"}),
                                           (False, {"a/w.safetensors", "a/c.json", "model_index.json"})])
def test_file_choice(half, expected):
    from genimg.models.download import choose_files

    listing = ["model_index.json", "a/c.json", "a/w.safetensors", "a/w.fp16.safetensors", "a/w.bin", "a/w.fp16.bin",
               "single.safetensors", "README.md", "a/flax_model.msgpack"]
    assert set(choose_files(listing, half)[0]) == expected
    # Sharded weights keep their index; a folder with no fp16 files keeps its plain ones under fp16.
    sharded = ["model_index.json", "t/m-00001-of-00002.safetensors", "t/m-00002-of-00002.safetensors",
               "t/m.safetensors.index.json", "v/w.safetensors"]
    assert set(choose_files(sharded, True)[0]) == set(sharded)
    # A single model (xinsir's union ControlNet): only what from_pretrained reads, not the ProMax file beside it.
    union = ["config.json", "config_promax.json", "diffusion_pytorch_model.safetensors",
             "diffusion_pytorch_model_promax.safetensors", "images/masonry.webp"]
    assert set(choose_files(union, True)[0]) == {"config.json", "config_promax.json", "diffusion_pytorch_model.safetensors"}
    # A repository of LoRA or checkpoint files is no single model: all its safetensors are wanted.
    loras = ["README.md", "lora_2step.safetensors", "lora_4step.safetensors"]
    assert set(choose_files(loras, True)[0]) == {"lora_2step.safetensors", "lora_4step.safetensors"}


def test_first_use_by_a_generation_fetches_as_download_does(cli, hub, served_repo, tmp_path):
    hub.repos["genimg-test/served-first"] = served_repo
    result = cli("txt2img", "x", "-m", "genimg-test/served-first", "-W", "64", "-H", "64", "--steps", "2",
                 "--dtype", "bf16", "-o", tmp_path / "a.png")
    assert result.code == 0, result
    fetched = _fetched(hub)
    assert UNET_FP16 in fetched and UNET not in fetched and not any(f.endswith(".bin") for f in fetched)
    hub.requests.clear()
    assert cli("txt2img", "x", "-m", "genimg-test/served-first", "-W", "64", "-H", "64", "--steps", "2",
               "--dtype", "bf16", "-o", tmp_path / "b.png").code == 0
    assert not _fetched(hub)  # the second run takes the cache


@pytest.fixture(scope="session")
def served_controlnet(tiny_controlnets, tmp_path_factory) -> Path:
    """The tiny SD1.5 ControlNet as hub repositories hold one: config.json, its weights and their fp16 variant."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("served-controlnet") / "repo"
    shutil.copytree(tiny_controlnets["sd"], folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    save_file({k: v.half() for k, v in load_file(str(weights)).items()},
              str(folder / "diffusion_pytorch_model.fp16.safetensors"))
    return folder


def test_a_controlnet_is_fetched_on_first_use_as_its_fp16_variant_and_loads(cli, hub, served_controlnet, tiny_models,
                                                                          tmp_path, monkeypatch):
    from PIL import Image, ImageDraw

    hub.repos["genimg-test/served-controlnet"] = served_controlnet
    edges = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(edges).ellipse((12, 12, 52, 52), outline="white", width=3)
    edges.save(tmp_path / "edges.png")
    common = (tmp_path / "edges.png", "a ring", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3",
              "--seed", "5", "--dtype", "bf16")
    result = cli("controlnet", *common, "--controlnet", "genimg-test/served-controlnet", "-o", tmp_path / "hub.png")
    assert result.code == 0, result
    assert _fetched(hub) == {"config.json", "diffusion_pytorch_model.fp16.safetensors"}
    assert cli("controlnet", *common, "--controlnet", served_controlnet, "-o", tmp_path / "folder.png").code == 0
    assert cli("txt2img", *common[1:], "-o", tmp_path / "plain.png").code == 0
    hub_image, folder_image, plain = (pixels(tmp_path / f"{n}.png").astype(int) for n in ("hub", "folder", "plain"))
    assert np.abs(hub_image - folder_image).mean() < 2 < np.abs(hub_image - plain).mean()
    # Offline, the cached fp16 variant is what loads.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.requests.clear()
    result = cli("controlnet", *common, "--controlnet", "genimg-test/served-controlnet", "-o", tmp_path / "again.png")
    assert result.code == 0, result
    assert not hub.requests and np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "hub.png"))


def test_a_controlnet_for_another_family_is_refused_before_its_weights_come(cli, hub, served_controlnet, tiny_models,
                                                                           tmp_path):
    from PIL import Image

    hub.repos["genimg-test/served-controlnet-sd"] = served_controlnet
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    result = cli("controlnet", tmp_path / "x.png", "a ring", "-m", tiny_models["sdxl"],
                 "--controlnet", "genimg-test/served-controlnet-sd", "-o", tmp_path / "out.png")
    assert result.code == 2 and "not a ControlNet for this SDXL model" in result.err, result
    assert _fetched(hub) == {"config.json"}


def test_a_vae_by_hub_id_is_fetched_and_decodes(cli, hub, tiny_models, tmp_path):
    """The tiny model's own VAE served as a repository: fetched by --vae, it gives the model's picture."""
    hub.repos["genimg-test/served-vae"] = tiny_models["sd"] / "vae"
    common = ("x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "3")
    result = cli("txt2img", *common, "--vae", "genimg-test/served-vae", "-o", tmp_path / "hub.png")
    assert result.code == 0, result
    assert {"config.json", "diffusion_pytorch_model.safetensors"} <= _fetched(hub)
    assert cli("txt2img", *common, "-o", tmp_path / "own.png").code == 0
    assert np.array_equal(pixels(tmp_path / "hub.png"), pixels(tmp_path / "own.png"))


@pytest.fixture
def checkpoint(sd_single_file, tmp_path):
    """A single-file checkpoint and a page that is not one, to serve as download links."""
    page = tmp_path / "model.safetensors"  # what a link gives when it wants a login: HTML
    page.write_text("<html><body>Please log in</body></html>")
    return sd_single_file, page


def test_a_checkpoint_by_url_is_saved_checked_and_loads(cli, hub, checkpoint, tmp_path, tiny_models):
    import hashlib

    single, _ = checkpoint
    hub.files["api/download/models/123"] = single
    hub.cut_once.add("api/download/models/123")
    url = hub_url(hub) + "/files/api/download/models/123"
    digest = hashlib.sha256(single.read_bytes()).hexdigest()
    result = cli("models", "download", url, "--sha256", digest, "--json")
    assert result.code == 0, result
    saved = Path(json.loads(result.out)["path"])
    assert saved.name == single.name  # the server's file name, not the URL's
    assert saved.read_bytes() == single.read_bytes() and not list(saved.parent.glob("*.part"))
    ranges = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/123")]
    assert ranges[0] is None and ranges[-1].startswith("bytes=") and len(ranges) == 2  # cut, then resumed
    again = cli("models", "download", url)
    assert again.code == 2 and "already exists; pass --overwrite" in again.err
    common = ("x", "-W", "64", "-H", "64", "--steps", "2", "--seed", "1", "--config", tiny_models["sd"], "-o")
    assert cli("txt2img", *common, tmp_path / "a.png", "-m", saved).code == 0
    assert cli("txt2img", *common, tmp_path / "b.png", "-m", single).code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


@pytest.mark.parametrize("case,code,words", [
    ("sha", 1, "its SHA-256 is"),
    ("page", 2, "did not give a safetensors file"),
    ("pickle", 2, "is a pickle checkpoint"),
    ("missing", 2, "answered 404"),
])
def test_bad_checkpoint_links_save_nothing(cli, hub, checkpoint, tmp_path, case, code, words):
    single, page = checkpoint
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"pickle")
    hub.files.update({"good": single, "page": page, "pickle": pickle})
    name = {"sha": "good", "page": "page", "pickle": "pickle", "missing": "nothing-here"}[case]
    extra = ("--sha256", "0" * 64) if case == "sha" else ()
    result = cli("models", "download", hub_url(hub) + f"/files/{name}", "-o", tmp_path / "saved", *extra)
    assert result.code == code and result.err.count("\n") == 1, result
    assert words in result.err
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").iterdir())


def hub_url(state) -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def test_the_hubs_reachability_is_kept_for_a_while_then_probed_again(monkeypatch):
    """A long-running server must notice the network come back: a probe's answer lives PROBE_TTL seconds."""
    import socket

    from genimg.models import hub as genimg_hub

    genimg_hub.forget_probes()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert genimg_hub.unreachable_reason(endpoint, timeout=1)  # bound, not listening: refused
        listener.listen()
        assert genimg_hub.unreachable_reason(endpoint, timeout=1)  # the kept answer, within its time
        monkeypatch.setattr(genimg_hub, "PROBE_TTL", 0.0)
        assert genimg_hub.unreachable_reason(endpoint, timeout=1) is None  # probed again: it answers now
    genimg_hub.forget_probes()
