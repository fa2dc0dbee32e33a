"""--denoiser FILE.gguf: quantized UNets and FLUX transformers, written by the gguf package in Q8_0."""

import numpy as np
import pytest
from PIL import Image

from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "1")


@pytest.fixture(scope="session")
def gguf_files(tiny_models, tmp_path_factory):
    pytest.importorskip("gguf")  # in the test extra: skipped only where someone installed without it
    from genimg.testing.tiny_models import save_tiny_gguf

    root = tmp_path_factory.mktemp("gguf")
    return {family: save_tiny_gguf(folder, root / f"{family}-Q8_0.gguf") for family, folder in tiny_models.items()}


def _pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_a_gguf_denoiser_runs_in_place_of_the_models_own(cli, tmp_path, tiny_models, gguf_files, family):
    model = ("-m", tiny_models[family])
    result = cli("txt2img", "a red circle", *model, *FAST, "--denoiser", gguf_files[family], "-o", tmp_path / "q.png")
    assert result.code == 0, result
    assert cli("txt2img", "a red circle", *model, *FAST, "-o", tmp_path / "full.png").code == 0
    assert cli("txt2img", "a red circle", *model, *FAST[:-1], "2", "-o", tmp_path / "other.png").code == 0
    quantized, full, other = (_pixels(tmp_path / f"{n}.png") for n in ("q", "full", "other"))
    rounding = np.abs(quantized - full).mean()
    assert 0 < rounding < 4  # Q8_0's rounding shows (the file was used) and the picture stays
    assert np.abs(full - other).mean() > 4 * rounding
    spec = read_metadata(tmp_path / "q.png")["genimg"]["spec"]
    assert spec["denoiser"] == str(gguf_files[family].resolve())
    again = cli("txt2img", "--from", tmp_path / "q.png", "-o", tmp_path / "again.png")
    assert again.code == 0, again
    assert np.array_equal(_pixels(tmp_path / "again.png"), quantized)


@pytest.mark.parametrize("model,denoiser,words", [
    ("flux", "sd", ("sd-Q8_0.gguf is a sd denoiser", "flux model")),
    ("sdxl", "sd", ("is a sd denoiser", "sdxl model")),
    ("sd", "not-gguf", ("takes a .gguf file",)),
    ("sd", "missing", ("does not exist",)),
    ("sd", "damaged", ("cannot be read as a GGUF file",)),
])
def test_a_wrong_denoiser_file_is_one_line(cli, tmp_path, tiny_models, gguf_files, model, denoiser, words):
    files = dict(gguf_files, missing=tmp_path / "none.gguf", damaged=tmp_path / "half.gguf",
                 **{"not-gguf": tmp_path / "w.safetensors"})
    files["damaged"].write_bytes(gguf_files["sd"].read_bytes()[:300])
    files["not-gguf"].write_bytes(b"x")
    result = cli("txt2img", "x", "-m", tiny_models[model], *FAST, "--denoiser", files[denoiser], "-o", tmp_path / "o.png")
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and all(w in result.err for w in words), result.err
    assert not (tmp_path / "o.png").exists()


def test_an_alias_can_carry_its_gguf_denoiser(cli, tmp_path, tiny_models, gguf_files, monkeypatch):
    """What the 8 GB FLUX users configure once: an alias = the model + its GGUF transformer."""
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "aliases.toml").write_text(
        f'[flux-q8]\nbase = "{tiny_models["flux"]}"\ndenoiser = "{gguf_files["flux"]}"\n')
    assert cli("txt2img", "a red circle", "-m", "flux-q8", *FAST, "-o", tmp_path / "alias.png").code == 0
    by_flag = ("-m", tiny_models["flux"], "--denoiser", gguf_files["flux"])
    assert cli("txt2img", "a red circle", *by_flag, *FAST, "-o", tmp_path / "flag.png").code == 0
    assert np.array_equal(_pixels(tmp_path / "alias.png"), _pixels(tmp_path / "flag.png"))
