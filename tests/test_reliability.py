"""What a careless or hostile user runs into: sizes the machine cannot hold, Ctrl-C in the middle of a step
(real processes, real SIGINT), full disks, colliding names, damaged metadata, a failed run folder,
non-finite numbers, and the mode of every file every command writes."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

FAST = ("-W", "64", "-H", "64", "--steps", "2", "--seed", "1")


def test_a_size_the_cpu_cannot_hold_is_refused_up_front_with_the_way_to_raise_it(cli, tmp_path, tiny_models):
    began = time.monotonic()
    result = cli("txt2img", "a red circle", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "100000", "-H", "64",
                 "-o", tmp_path / "a.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "4.2 MP" in result.err and "--max-megapixels" in result.err and time.monotonic() - began < 10
    raised = cli("txt2img", "x", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "2560", "-H", "2048",
                 "--max-megapixels", "5.5", "--steps", "1", "-o", tmp_path / "b.png", "--dtype", "fp32",
                 "--count", "0")  # checked up to the count: the size passed
    assert raised.code == 2 and "--count must be at least 1" in raised.err, raised


@pytest.mark.parametrize("flags,words", [
    (("--cfg", "nan"), "guidance must be a finite number"), (("--cfg", "inf"), "finite"),
    (("--hires", "2", "--hires-strength", "nan"), "finite"),
])
def test_non_finite_numbers_are_refused(cli, tmp_path, tiny_models, flags, words):
    result = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, *flags, "-o", tmp_path / "a.png")
    assert result.code == 2 and words in result.err and result.err.count("\n") == 1, result


def test_a_batch_row_with_nan_is_a_problem_of_that_row(cli, tmp_path, tiny_models):
    (tmp_path / "jobs.csv").write_text(f"prompt,cfg,model\na,nan,{tiny_models['sd']}\nb,3,{tiny_models['sd']}\n")
    result = cli("batch", tmp_path / "jobs.csv", "--check", "-o", tmp_path / "out")
    assert result.code == 2 and "jobs.csv:2" in result.err and "finite" in result.err, result


@pytest.mark.parametrize("extra,words", [
    (("--max-steps", "0"), "--max-steps must be at least 1"), (("--max-steps", "5", "--lr", "-1"), "--lr must be above 0"),
    (("--max-steps", "5", "--lr", "nan"), "--lr must be a finite number"),
    (("--epochs", "0"), "--epochs must be at least 1"),
])
def test_lora_train_refuses_bad_numbers_in_one_line_before_loading(cli, tmp_path, tiny_models, extra, words):
    (tmp_path / "data").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "data" / "a.png")
    began = time.monotonic()
    result = cli("lora-train", tmp_path / "data", "-m", tiny_models["sd"], "-o", tmp_path / "run", *extra)
    assert result.code == 2 and words in result.err and result.err.count("\n") == 1, result
    assert not (tmp_path / "run").exists() and time.monotonic() - began < 5


def test_a_failed_learn_run_leaves_no_folder_and_an_unfinished_one_is_no_trap(cli, tmp_path):
    from genimg.learn.runs import check_run
    from genimg.learn.train_ddpm import DDPMConfig

    result = cli("learn", "ddpm", "--dataset", "cifar", "-o", tmp_path / "run")
    assert result.code == 2 and "cifar" in result.err and not (tmp_path / "run").exists(), result
    # A folder a run left before its first checkpoint (it was stopped): neither "a run" nor resumable.
    (tmp_path / "run" / "samples").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    assert check_run(tmp_path / "run", DDPMConfig(), resume=False, overwrite=False).dataset == "digits"
    with pytest.raises(Exception, match="no checkpoint to resume; start a new run without --resume"):
        check_run(tmp_path / "run", DDPMConfig(), resume=True, overwrite=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")  # someone's own file: not replaced without --overwrite
    with pytest.raises(Exception, match="already holds a run; pass --resume"):
        check_run(tmp_path / "run", DDPMConfig(), resume=False, overwrite=False)


def _full_disk(monkeypatch):
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if str(fp).endswith(".part"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def test_a_full_disk_is_one_line_and_leaves_nothing(cli, tmp_path, tiny_models, monkeypatch):
    _full_disk(monkeypatch)
    result = cli("txt2img", "a ring", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out" / "deep")
    assert result.code == 1 and result.err.count("\n") == 1 and "no space left in" in result.err, result
    assert "MB free" in result.err and not (tmp_path / "out").exists()
    (tmp_path / "jobs.txt").write_text("a ring\nbars\n")
    batch = cli("batch", tmp_path / "jobs.txt", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "batch")
    assert batch.code == 1 and "no space left in" in batch.err and not (tmp_path / "batch").exists(), batch


def test_a_batch_that_cannot_fit_is_refused_before_it_starts(cli, tmp_path, tiny_models, monkeypatch):
    from genimg import files

    monkeypatch.setattr(files, "free_space", lambda folder: 10_000)
    (tmp_path / "jobs.txt").write_text("a ring\nbars\n")
    result = cli("batch", tmp_path / "jobs.txt", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "batch")
    assert result.code == 1 and "the batch (2 images) needs about" in result.err, result
    assert not (tmp_path / "batch").exists()


def test_upscaling_a_folder_with_two_files_of_one_name_writes_both(cli, tmp_path):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "in" / "photo.png")
    Image.new("RGB", (16, 16), "blue").save(tmp_path / "in" / "photo.jpg")
    result = cli("upscale", tmp_path / "in", "--model", "lanczos", "-o", tmp_path / "out")
    assert result.code == 0, result
    made = {p.name: Image.open(p).getpixel((30, 30)) for p in (tmp_path / "out").glob("*.png")}
    assert set(made) == {"photo-png-x4.png", "photo-jpg-x4.png"}
    assert made["photo-png-x4.png"] == (255, 0, 0) and made["photo-jpg-x4.png"][2] > 240  # (JPEG: 254)


def test_a_damaged_genimg_record_is_said_by_info_and_from_alike(cli, tmp_path, tiny_models):
    from PIL.PngImagePlugin import PngInfo

    made = cli("txt2img", "a ring", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "a.png")
    assert made.code == 0
    text = Image.open(tmp_path / "a.png").text
    for name, keep_a1111 in (("both.png", True), ("broken.png", False)):
        info = PngInfo()
        info.add_text("genimg", '{"spec": {"prompt": "a ri')  # cut off
        if keep_a1111:
            info.add_text("parameters", text["parameters"])
        Image.open(tmp_path / "a.png").save(tmp_path / name, pnginfo=info)
    shown = cli("info", tmp_path / "both.png")
    assert shown.code == 0 and "damaged" in shown.out and "reading its A1111 text instead" in shown.out, shown
    again = cli("txt2img", "--from", tmp_path / "both.png", "-m", tiny_models["sd"], "-o", tmp_path / "again.png")
    assert again.code == 0 and "genimg record is damaged" in again.err, again
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(tmp_path / "a.png")))
    broken = cli("txt2img", "--from", tmp_path / "broken.png", "-o", tmp_path / "b.png")
    assert broken.code == 2 and "damaged" in broken.err and broken.err.count("\n") == 1, broken
    info_broken = cli("info", tmp_path / "broken.png")
    assert info_broken.code == 0 and "damaged" in info_broken.out, info_broken


def test_every_file_every_command_writes_has_the_umasks_mode(cli, tmp_path, tiny_models, tiny_controlnets):
    old = os.umask(0o022)
    try:
        (tmp_path / "data").mkdir()
        for n, colour in enumerate(("red", "blue")):
            Image.new("RGB", (64, 64), colour).save(tmp_path / "data" / f"{n}.png")
            (tmp_path / "data" / f"{n}.txt").write_text(f"a {colour} square")
        (tmp_path / "jobs.txt").write_text("a ring\n")
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        mask.save(tmp_path / "mask.png")
        image = tmp_path / "data" / "0.png"
        runs = [
            ("txt2img", "a ring", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "gen"),
            ("img2img", image, "x", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "gen"),
            ("inpaint", image, "x", "--mask", tmp_path / "mask.png", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "gen"),
            ("outpaint", image, "x", "--extend", "left,right", "8", "-m", tiny_models["sd"], *FAST[4:], "-o", tmp_path / "gen"),
            ("controlnet", image, "x", "-m", tiny_models["sd"], "--controlnet", tiny_controlnets["sd"], *FAST,
             "-o", tmp_path / "gen"),
            ("upscale", tmp_path / "data", "-o", tmp_path / "up"),
            ("preprocess", "canny", tmp_path / "data", "-o", tmp_path / "maps"),
            ("batch", tmp_path / "jobs.txt", "-m", tiny_models["sd"], *FAST, "--grid", "-o", tmp_path / "batch"),
            ("lora-train", tmp_path / "data", "-m", tiny_models["sd"], "-o", tmp_path / "lora", "--max-steps", "2",
             "--resolution", "64", "--rank", "2", "--checkpoint-every", "1", "--save-format", "kohya"),
            ("learn", "ddpm", "-o", tmp_path / "ddpm", "--epochs", "1", "--size", "8"),
            ("learn", "sample", tmp_path / "ddpm", "--count", "4", "--steps", "2"),
            ("learn", "dcgan", "-o", tmp_path / "dcgan", "--epochs", "1"),
            ("learn", "demo-model", "-o", tmp_path / "demo", "--unet-steps", "2", "--vae-steps", "2", "--decoder-steps",
             "0", "--images", "16", "--batch", "4", "--vae-batch", "4", "--quiet"),
            ("learn", "demo-controlnet", "-m", tiny_models["sd"], "-o", tmp_path / "cn", "--steps", "2", "--images",
             "16", "--quiet"),
        ]
        for args in runs:
            result = cli(*args)
            assert result.code == 0, (args, result)
        written = [p for folder in ("gen", "up", "maps", "batch", "lora", "ddpm", "dcgan", "demo", "cn") for p in (tmp_path / folder).rglob("*")
                   if p.is_file()]
        assert len(written) > 40
        assert len(list((tmp_path / "gen").glob("*.png"))) == 5
        wrong = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in written
                 if p.stat().st_mode & 0o777 != 0o644}
        assert wrong == {}
    finally:
        os.umask(old)


# -- Ctrl-C in a real process --------------------------------------------------------------------------

def _ctrl_c_as_in_a_terminal():
    """A child whose SIGINT is not ignored: a shell starts background jobs (a CI script run with `&`) with
    SIGINT ignored, Python then installs no KeyboardInterrupt handler, and genimg rightly leaves it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, tmp_path):
    env = {**os.environ, "GENIMG_PROGRESS_EVERY": "0.3"}
    return subprocess.Popen([sys.executable, "-m", "genimg", *map(str, args)], cwd=tmp_path, env=env,
                            preexec_fn=_ctrl_c_as_in_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_when(process, words: str, timeout: float = 120) -> tuple[int, str, str, float]:
    """SIGINT once ``words`` shows on stderr; (exit code, stdout, stderr, seconds from SIGINT to exit)."""
    import selectors

    seen, deadline = "", time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    while words not in seen and time.monotonic() < deadline and process.poll() is None:
        if selector.select(timeout=1):
            seen += process.stderr.readline()
    assert words in seen, seen
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, seen + err, time.monotonic() - sent


@pytest.mark.slow  # a fresh process importing the stack; the watchdog itself is tested below in the default run
def test_ctrl_c_in_the_middle_of_a_txt2img_step_exits_130_and_says_what_was_made(tmp_path, tiny_models):
    process = _start(["txt2img", "a ring", "-m", tiny_models["sd"], "-W", "256", "-H", "256", "--steps", "5000",
                      "--seed", "1", "-o", tmp_path / "out"], tmp_path)
    code, out, err, seconds = _interrupt_when(process, "denoising step")
    assert code == 130 and seconds < 15, err
    assert "interrupted: 0 of 1 images written" in err and not list(tmp_path.rglob("*.png"))


def test_ctrl_c_while_upscaling_exits_130_and_says_what_was_written(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    process = _start(["upscale", tmp_path / "big.png", "--tile", "32", "-o", tmp_path / "out"], tmp_path)
    code, out, err, seconds = _interrupt_when(process, "tile")
    assert code == 130 and seconds < 15, err
    assert "interrupted: 0 images upscaled" in err and not (tmp_path / "out").exists()


@pytest.mark.slow  # a fresh training process, then a resumed one
def test_ctrl_c_in_lora_train_saves_a_checkpoint_and_resume_goes_on_from_it(cli, tmp_path, tiny_models):
    (tmp_path / "data").mkdir()
    for n in range(2):
        Image.fromarray(np.random.default_rng(n).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "data" / f"{n}.png")
    args = ["lora-train", tmp_path / "data", "-m", tiny_models["sd"], "-o", tmp_path / "run", "--resolution", "64",
            "--rank", "2", "--caption", "a square", "--max-steps", "100000", "--checkpoint-every", "100000"]
    code, out, err, seconds = _interrupt_when(_start(args, tmp_path), "training step")
    assert code == 130 and seconds < 30, err
    [checkpoint] = (tmp_path / "run" / "checkpoints").glob("step-*.safetensors")
    step = int(checkpoint.stem.split("-")[1])
    assert f"interrupted at step {step} of 100000" in err and "--resume latest" in err
    logged = [int(row.split(",")[0]) for row in (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]]
    assert logged == list(range(1, step + 1))
    resumed = cli(*args[:-4], "--max-steps", str(step + 2), "--checkpoint-every", "100000", "--resume", "latest",
                  "--json")
    assert resumed.code == 0, resumed
    record = json.loads(resumed.out)
    assert record["steps"] == step + 2 and isinstance(record["eval_loss_before"], float)
    logged = [int(row.split(",")[0]) for row in (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]]
    assert logged == list(range(1, step + 3))


def test_ctrl_c_stops_even_inside_one_long_torch_call(tmp_path):
    code = ("import sys, threading\n"
            "from genimg.interrupts import stop_promptly_on_ctrl_c\n"
            "stop_promptly_on_ctrl_c(1.0)\n"
            "import torch\n"
            "torch.set_num_threads(1)\n"
            "a = torch.ones(12000, 12000)\n"
            "def say(): sys.stderr.write('inside\\n'); sys.stderr.flush()\n"
            "threading.Timer(1.0, say).start()  # said from a thread while the main one is in the C call\n"
            "a @ a  # 3.5 TFLOP: well over ten seconds in one C call on one core\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    time.sleep(0.5)
    returned, out, err, seconds = _interrupt_when(process, "inside")
    assert returned == 130 and seconds < 6 and "interrupted inside a long step" in err, (err, seconds)
