"""genimg batch: every file format, wildcards, resume, shards, errors."""

import json

import numpy as np
import pytest

from genimg.testing.images import pixels
from genimg.batch.files import read_rows
from genimg.batch.jobs import build_jobs
from genimg.errors import UsageError

FAST = ("-W", "64", "-H", "64", "--steps", "2")

FORMATS = {
    "prompts.txt": "# two prompts\na red circle\n\na blue square\n",
    "prompts.csv": 'prompt,seed,steps,cfg\na red circle,1,3,5\n"a blue square, big",2,4,6\n',
    "prompts.tsv": "prompt\tseed\tsteps\tcfg\na red circle\t1\t3\t5\na blue square, big\t2\t4\t6\n",
    "prompts.jsonl": '{"prompt": "a red circle", "seed": 1, "steps": 3, "cfg": 5}\n'
                     '{"prompt": "a blue square, big", "seed": 2, "steps": 4, "cfg_scale": 6}\n',
    "prompts.toml": '[defaults]\ncfg = 5\n\n[[jobs]]\nprompt = "a red circle"\nseed = 1\nsteps = 3\n\n'
                    '[[jobs]]\nprompt = "a blue square, big"\nseed = 2\nsteps = 4\ncfg = 6\n',
    "prompts.yaml": "defaults:\n  cfg: 5\njobs:\n  - prompt: a red circle\n    seed: 1\n    steps: 3\n"
                    "  - {prompt: 'a blue square, big', seed: 2, steps: 4, cfg: 6}\n",
}


def _jobs(tmp_path, name, text, **kw):
    path = tmp_path / name
    path.write_text(text)
    rows, defaults = read_rows(path)
    jobs, problems = build_jobs(rows, defaults, {}, tmp_path, name, base_seed=0, **kw)
    if problems:
        raise UsageError(f"{problems[0].where}: {problems[0].message}")
    return jobs


@pytest.mark.parametrize("name", [n for n in FORMATS if not n.endswith(".txt")])
def test_every_structured_format_gives_the_same_jobs(tmp_path, name):
    jobs = _jobs(tmp_path, name, FORMATS[name])
    got = [(j.spec.prompt, j.spec.seed, j.spec.steps, j.spec.guidance) for j in jobs]
    assert got == [("a red circle", 1, 3, 5), ("a blue square, big", 2, 4, 6)]


def test_text_file_skips_comments_and_blank_lines_and_fixes_seeds(tmp_path):
    jobs = _jobs(tmp_path, "prompts.txt", FORMATS["prompts.txt"])
    assert [j.spec.prompt for j in jobs] == ["a red circle", "a blue square"]
    again = _jobs(tmp_path, "prompts.txt", FORMATS["prompts.txt"])
    assert [j.spec.seed for j in jobs] == [j.spec.seed for j in again] and jobs[0].spec.seed != jobs[1].spec.seed


def test_wildcards_with_a_fixed_seed_give_fixed_prompts(tmp_path):
    text = "a {small|large} __shapes__ on a {red|blue} background\n"
    first = [j.spec.prompt for j in _jobs(tmp_path, "w.txt", text, repeat=5)]
    assert first == [j.spec.prompt for j in _jobs(tmp_path, "w.txt", text, repeat=5)]
    assert all("__" not in p and "{" not in p for p in first)
    combos = {j.spec.prompt for j in _jobs(tmp_path, "w.txt", text, combinatorial=True)}
    assert len(combos) == 2 * 4 * 2 and "a large star on a blue background" in combos


def test_unknown_column_lists_the_allowed_ones(tmp_path):
    with pytest.raises(UsageError, match=r"p.csv:2: unknown column 'colour'.*; allowed: .*prompt"):
        _jobs(tmp_path, "p.csv", "prompt,colour\nx,red\n")


@pytest.mark.parametrize("name,text,where", [
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": oops}\n', "bad.jsonl:2:12"),
    ("bad.toml", "[[jobs]]\nprompt = \n", "bad.toml"),
    ("bad.yaml", "jobs:\n  - prompt: [unclosed\n", "bad.yaml:3"),
    ("bad.csv", 'prompt,seed\n"a,1\n', "bad.csv"),
])
def test_unparseable_files_name_the_place(tmp_path, name, text, where):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=where.replace(".", r"\.")):
        read_rows(tmp_path / name)


def _batch(cli, *args):
    result = cli("batch", *args, "--json")
    lines = [json.loads(line) for line in result.out.splitlines()]
    return result, [r for r in lines if "path" in r], next((r["summary"] for r in lines if "summary" in r), None)


def test_batch_writes_images_and_a_manifest_and_resumes_without_redoing(cli, tmp_path, tiny_models):
    (tmp_path / "p.txt").write_text("a red circle\na blue square\n")
    out = tmp_path / "out"
    result, images, summary = _batch(cli, tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--count", "2", "-o", out)
    assert result.code == 0, result
    assert summary["done"] == 4 and len(images) == 4
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert sum('"job"' in line for line in lines) == 4
    result, images, summary = _batch(cli, tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--count", "2", "-o", out)
    assert (summary["done"], summary["skipped"]) == (0, 4)


def test_interrupted_batch_resumes_to_the_same_files_as_an_uninterrupted_one(cli, tmp_path, tiny_models, monkeypatch):
    from genimg.batch import plan, runner

    (tmp_path / "p.txt").write_text("a {red|green|blue} circle\na small star\n")
    args = (tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--repeat", "2", "--seed", "9")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("batch", *args, "-o", whole).code == 0

    original_run = runner.run_batch
    made = []

    def interrupting_run(units, plans, folder, fail_fast, progress, result, stop=None, first_record=None, executor=None):
        def on_event(event, **info):
            progress(event, **info)
            if event == "batch_image":
                made.append(info["path"])
                if len(made) == 2:
                    stop.stop = True  # what the first Ctrl-C does
        return original_run(units, plans, folder, fail_fast, on_event, result, stop, first_record, executor)

    with monkeypatch.context() as patch:
        patch.setattr(plan, "run_batch", interrupting_run)
        first = cli("batch", *args, "-o", parts)
    assert first.code == 130 and len(made) == 2
    assert cli("batch", *args, "-o", parts).code == 0
    names = sorted(p.name for p in whole.glob("*.png"))
    assert names == sorted(p.name for p in parts.glob("*.png")) and len(names) == 4
    for name in names:
        assert np.array_equal(pixels(whole / name), pixels(parts / name))


def test_rows_that_differ_only_in_prompt_share_a_forward_pass_and_keep_their_own_prompts(cli, tmp_path, tiny_models):
    from diffusers import StableDiffusionPipeline

    from genimg.output.metadata import read_metadata

    prompts = ["a red circle", "a blue square", "a green star"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    calls = []
    original = StableDiffusionPipeline.__call__

    def counting_call(self, *args, **kwargs):
        calls.append(list(kwargs["prompt"]))
        return original(self, *args, **kwargs)

    StableDiffusionPipeline.__call__ = counting_call
    try:
        result, images, _ = _batch(cli, tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--seed", "4",
                                   "--batch-size", "3", "-o", tmp_path / "out")
    finally:
        StableDiffusionPipeline.__call__ = original
    assert result.code == 0 and calls == [prompts]
    made = {}
    for record in images:
        spec = read_metadata(record["path"])["genimg"]["spec"]
        made[spec["prompt"]] = spec["seed"]
        alone = tmp_path / f"alone-{spec['seed']}.png"
        assert cli("txt2img", spec["prompt"], "-m", tiny_models["sd"], *FAST, "--seed", str(spec["seed"]),
                   "-o", alone).code == 0
        # The same picture as its prompt and seed give alone (batched matmuls may round differently).
        assert np.abs(pixels(alone).astype(int) - pixels(record["path"]).astype(int)).max() <= 2
    assert sorted(made) == sorted(prompts) and len(set(made.values())) == 3


def test_two_shards_cover_every_job_exactly_once(cli, tmp_path, tiny_models):
    (tmp_path / "p.txt").write_text("".join(f"prompt number {i}\n" for i in range(5)))
    out = tmp_path / "out"
    seen = []
    for shard in ("0/2", "1/2"):
        result, images, _ = _batch(cli, tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--seed", "1",
                                   "--shard", shard, "-o", out)
        assert result.code == 0
        seen += [r["path"] for r in images]
    assert len(seen) == len(set(seen)) == 5
    jobs = [json.loads(line)["job"] for line in (out / "manifest.jsonl").read_text().splitlines() if '"job"' in line]
    assert sorted(jobs) == sorted(set(jobs)) and len(jobs) == 5


def test_shards_made_apart_merge_by_copying_and_the_folder_can_move(cli, tmp_path, tiny_models):
    import shutil

    (tmp_path / "p.txt").write_text("".join(f"prompt number {i}\n" for i in range(4)))
    args = (tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--seed", "3")
    for shard, folder in (("0/2", "a"), ("1/2", "b")):  # two machines, no shared disk
        assert cli("batch", *args, "--shard", shard, "-o", tmp_path / folder).code == 0
    for png in (tmp_path / "b").glob("*.png"):
        shutil.copy(png, tmp_path / "a")
    with open(tmp_path / "a" / "manifest.jsonl", "a") as merged:
        merged.write((tmp_path / "b" / "manifest.jsonl").read_text())
    (tmp_path / "a").rename(tmp_path / "moved")
    result, _, summary = _batch(cli, *args, "-o", tmp_path / "moved")
    assert result.code == 0 and (summary["done"], summary["skipped"]) == (0, 4)


@pytest.mark.slow
def test_two_launched_processes_split_the_jobs_and_agree_on_seeds_without_a_seed_flag(tmp_path, tiny_models, launch_two):
    """`accelerate launch` (torchrun beneath) sets RANK and WORLD_SIZE; each process takes its share into one folder."""
    import os
    import subprocess
    import sys

    (tmp_path / "p.txt").write_text("".join(f"prompt number {i}\n" for i in range(5)))
    args = ["batch", str(tmp_path / "p.txt"), "-m", str(tiny_models["sd"]), *FAST, "--quiet"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    launched = subprocess.run([*launch_two, "-m", "genimg", *args, "-o", str(tmp_path / "two")],
                              env=env, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines()]
    jobs = [r["job"] for r in records if "job" in r]
    assert sorted(jobs) == sorted(set(jobs)) and len(jobs) == 5
    assert len({r["batch_seed"] for r in records if "batch_seed" in r}) == 1
    # The same jobs and seeds as two --shard runs in one process each, into another folder.
    for shard in ("0/2", "1/2"):
        alone = subprocess.run([sys.executable, "-m", "genimg", *args, "--shard", shard, "-o", str(tmp_path / "one")],
                               env=env, capture_output=True, text=True, timeout=300)
        assert alone.returncode == 0, alone.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "two").glob("*.png")) == sorted(p.name for p in (tmp_path / "one").glob("*.png"))


def test_a_failing_row_is_reported_and_the_others_run(cli, tmp_path, tiny_models):
    (tmp_path / "p.csv").write_text("prompt,image,task\nfine,,txt2img\nbroken,missing.png,img2img\nalso fine,,txt2img\n")
    result, images, summary = _batch(cli, tmp_path / "p.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 1
    assert "p.csv:3" in result.err and "does not exist" in result.err
    assert summary["done"] == 2 and summary["failed"] == 1
    result, _, _ = _batch(cli, tmp_path / "p.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "ff", "--fail-fast")
    assert result.code == 2 and not list((tmp_path / "ff").glob("*.png"))


def test_check_validates_without_generating(cli, tmp_path, tiny_models):
    (tmp_path / "p.csv").write_text("prompt,steps,scheduler\nok,2,Euler\nbad,2,Eular\n")
    result = cli("batch", tmp_path / "p.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out", "--check")
    assert result.code == 2 and "Eular" in result.err and "2 rows: 1 job ready (1 image" in result.out
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


def test_rows_override_command_line_defaults_and_relative_paths_follow_the_file(cli, tmp_path, tiny_models):
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(tmp_path / "in.png")
    (tmp_path / "p.jsonl").write_text('{"prompt": "x", "task": "img2img", "image": "in.png", "strength": 0.5, "steps": 4}\n'
                                      '{"prompt": "y", "size": "32x64"}\n')
    result, images, _ = _batch(cli, tmp_path / "p.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0, result
    settings = [r["settings"] for r in images]
    assert settings[0]["task"] == "img2img" and settings[0]["steps"] == 4 and settings[0]["strength"] == 0.5
    assert (settings[1]["width"], settings[1]["height"]) == (32, 64)


def test_grid_gathers_a_rows_combinations_into_one_sheet(cli, tmp_path, tiny_models):
    from PIL import Image

    (tmp_path / "p.txt").write_text("a {red|blue} {circle|star}\na green square\n")
    result = cli("batch", tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "--combinatorial", "--grid",
                 "-o", tmp_path / "o")
    assert result.code == 0, result
    sheets = sorted((tmp_path / "o").glob("grid-*.png"))
    assert [p.name for p in sheets] == ["grid-a_green_square.png", "grid-a_red_blue_circle_star.png"]
    assert "4 images of the row 'a {red|blue} {circle|star}'" in result.err
    with Image.open(tmp_path / "o" / "grid-a_red_blue_circle_star.png") as sheet:
        assert sheet.size == (128, 128)  # 2x2 cells of the images' own 64 px: the four combinations together
        cells = np.asarray(sheet.convert("RGB"), dtype=np.int16)
    made = sorted(p for p in (tmp_path / "o").glob("*.png") if not p.name.startswith("grid-") and "square" not in p.name)
    assert len(made) == 4
    with Image.open(made[0]) as first:
        expected = np.asarray(first.convert("RGB"), dtype=np.int16)
    assert np.array_equal(cells[:64, :64], expected)  # the first image sits in the first cell


def test_bad_rows_of_every_kind_are_named_and_the_good_rows_run(cli, tmp_path, tiny_models):
    from PIL import Image

    Image.new("RGB", (48, 48), "red").save(tmp_path / "in.png")
    (tmp_path / "p.toml").write_text(
        '[[jobs]]\nprompt = "good one"\n\n'
        '[[jobs]]\nprompt = "bad steps"\nsteps = "many"\n\n'
        '[[jobs]]\nprompt = "grown"\ntask = "inpaint"\nimage = "in.png"\nextend = "right:16"\nsize = "64x48"\n\n'
        '[[jobs]]\nprompt = "bad extend"\ntask = "inpaint"\nimage = "in.png"\nextend = "up:16"\n\n'
        '[[jobs]]\nprompt = "good two"\n')
    (tmp_path / "q.jsonl").write_text('{"prompt": "fine"}\n{"prompt": "bad count", "count": "x"}\n'
                                      '{"prompt": "bad cfg", "cfg": [1]}\n')
    checked = cli("batch", tmp_path / "p.toml", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "o", "--check")
    assert checked.code == 2 and "5 jobs" not in checked.out
    # a [[jobs]] table's bad setting is named by its own line (not the table's header's: 4 and 15)
    assert "p.toml:6: steps must be a whole number (got 'many')" in checked.err
    assert "p.toml:19: extend 'up:16'" in checked.err and len(checked.err.strip().splitlines()) == 2
    result, images, summary = _batch(cli, tmp_path / "p.toml", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "o")
    assert result.code == 1 and summary["done"] == 3 and summary["failed"] == 2
    grown = next(r for r in images if r["settings"]["prompt"] == "grown")
    from PIL import Image as PILImage

    with PILImage.open(grown["path"]) as im:
        assert im.size == (64, 48)  # 48 + 16 to the right
    assert grown["settings"]["outpaint"] == {"right": 16}
    result, images, summary = _batch(cli, tmp_path / "q.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "q")
    assert "q.jsonl:2: count must be a whole number (got 'x')" in result.err
    assert "q.jsonl:3: guidance must be a number" in result.err
    assert summary["done"] == 1 and summary["failed"] == 2


def test_wildcard_rows_leave_no_temporary_folders(cli, tmp_path, tiny_models, monkeypatch):
    import os
    import tempfile

    user = tmp_path / "config"
    (user / "wildcards").mkdir(parents=True)
    (user / "wildcards" / "pets.txt").write_text("cat\ndog\n")
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(user))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.makedirs(tmp_path / "tmp")
    (tmp_path / "p.txt").write_text("".join(f"a __pets__ number {i}\n" for i in range(5)))
    result, images, _ = _batch(cli, tmp_path / "p.txt", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "o")
    assert result.code == 0, result
    assert all(("cat" in r["settings"]["prompt"]) or ("dog" in r["settings"]["prompt"]) for r in images)
    assert list((tmp_path / "tmp").iterdir()) == []


def _names(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def test_a_jobs_identity_is_its_content_not_its_line(cli, tmp_path, tiny_models):
    run = ("-m", tiny_models["sd"], *FAST, "--seed", "4", "-o", tmp_path / "o")
    (tmp_path / "a.txt").write_text("a red circle\na {small|big} star\n")
    (tmp_path / "b.txt").write_text("a red circle\n")
    first, images, _ = _batch(cli, tmp_path / "a.txt", *run)
    made = _names(tmp_path / "o")
    assert first.code == 0 and len(made) == 2
    # Another file into the same folder makes its own images and touches none of a.txt's.
    _, _, summary = _batch(cli, tmp_path / "b.txt", *run)
    assert summary["done"] == 1 and set(made) < set(_names(tmp_path / "o"))
    # A comment on top and the rows reordered: nothing is made again, nothing renamed.
    (tmp_path / "a.txt").write_text("# my prompts\n\na {small|big} star\na red circle\n")
    _, _, summary = _batch(cli, tmp_path / "a.txt", *run)
    assert summary == {**summary, "done": 0, "skipped": 2}
    lines = (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 3  # the batch seed, then one line per image ever made
    # Changing a row's settings makes that row anew.
    (tmp_path / "a.txt").write_text("a {small|big} star\na red circle, at dusk\n")
    _, _, summary = _batch(cli, tmp_path / "a.txt", *run)
    assert (summary["done"], summary["skipped"]) == (1, 1)


@pytest.mark.slow  # two processes, the first outlasting the second's start-up: about a minute on 2 cores
def test_a_second_batch_into_the_same_folder_refuses_and_each_image_is_made_once(tmp_path):
    """Two `genimg batch` processes into one folder at once: the second says so in one line, the first makes
    each image once and records it once."""
    import json
    import os
    import subprocess
    import sys
    import time

    rows = "".join(json.dumps({"prompt": f"ring {n}", "model": "demo", "steps": 150, "seed": n}) + "\n" for n in range(4))
    (tmp_path / "four.jsonl").write_text(rows)
    command = [sys.executable, "-m", "genimg", "batch", str(tmp_path / "four.jsonl"), "-o", str(tmp_path / "par"),
               "--preset", "cpu", "-q"]
    env = {**os.environ, "GENIMG_STATE_DIR": str(tmp_path / "state")}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "state" / "batch-locks").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert second.returncode == 2 and "another genimg batch (pid" in second.stderr, second.stderr
    assert second.stderr.count("\n") == 1 and first.returncode == 0, err
    records = [json.loads(line) for line in (tmp_path / "par" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in records if "path" in r) == sorted(p.name for p in (tmp_path / "par").glob("*.png"))
    assert len([r for r in records if "path" in r]) == 4


def test_the_lock_is_per_folder_and_shard(tmp_path):
    from genimg.batch.lock import batch_lock

    with batch_lock(tmp_path / "a", (0, 2)):
        with batch_lock(tmp_path / "a", (1, 2)), batch_lock(tmp_path / "b", (0, 2)):
            pass  # another shard of the folder, or another folder: free
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            message = pool.apply(_try_lock, (str(tmp_path / "a"), (0, 2)))
        assert "another genimg batch (pid" in message and "(shard 0/2)" in message
    with batch_lock(tmp_path / "a", (0, 2)):  # released: taken again
        pass


def _try_lock(folder, shard):
    from pathlib import Path

    from genimg.batch.lock import batch_lock
    from genimg.errors import UsageError

    try:
        with batch_lock(Path(folder), shard):
            return "taken"
    except UsageError as e:
        return str(e)


def test_batch_rows_take_a1111s_extras_as_the_cli_does(cli, tmp_path, tiny_models):
    """A row's variation seed, prompt editing and tiling make what the same flags make."""
    from genimg.testing.images import pixels

    (tmp_path / "rows.jsonl").write_text(
        '{"prompt": "a red circle", "seed": 3, "variation_seed": 9, "variation_strength": 1}\n'
        '{"prompt": "[red:blue:0] circle", "seed": 4, "tiling": "xy"}\n')
    result, images, summary = _batch(cli, tmp_path / "rows.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0 and summary["done"] == 2, result
    first, second = sorted(images, key=lambda r: r["seed"])
    assert cli("txt2img", "a red circle", "-m", tiny_models["sd"], *FAST, "--seed", "9", "-o", tmp_path / "a.png").code == 0
    assert cli("txt2img", "blue circle", "-m", tiny_models["sd"], *FAST, "--seed", "4", "--tiling",
               "-o", tmp_path / "b.png").code == 0
    assert (pixels(first["path"]) == pixels(tmp_path / "a.png")).all()
    assert (pixels(second["path"]) == pixels(tmp_path / "b.png")).all()


def test_a_row_with_xyz_makes_its_plot_in_its_own_folder_equal_to_the_cli_plot_and_resumes(cli, tmp_path, tiny_models):
    model = str(tiny_models["sd"])
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"prompt": "a red circle", "seed": 3, "xyz": ["steps=1,2", "cfg=3,6"]}) + "\n"
        + json.dumps({"prompt": "a blue square", "seed": 4}) + "\n"
        + json.dumps({"prompt": "a ring", "xyz": "stepz=1,2"}) + "\n")
    args = ("batch", tmp_path / "jobs.jsonl", "-m", model, "-W", "64", "-H", "64", "--preset", "cpu")
    checked = cli(*args, "-o", tmp_path / "out", "--check")
    assert checked.code == 2 and "jobs.jsonl:3: xyz: 'stepz=1,2': 'stepz' is not a setting" in checked.err, checked
    assert "2 jobs ready (5 images" in checked.out  # the plot's four and the plain row's one
    (tmp_path / "jobs.jsonl").write_text("\n".join((tmp_path / "jobs.jsonl").read_text().splitlines()[:2]) + "\n")
    assert cli(*args, "-o", tmp_path / "out").code == 0
    [folder] = [p for p in (tmp_path / "out").iterdir() if p.is_dir() and p.name.startswith("xyz-")]
    plotted = cli("txt2img", "a red circle", "-m", model, "-W", "64", "-H", "64", "--preset", "cpu", "--seed", "3",
                  "--xyz", "steps=1,2", "--xyz", "cfg=3,6", "-o", tmp_path / "cli")
    assert plotted.code == 0, plotted
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cli").iterdir()) and "xyz_grid-00.png" in names
    for name in names:
        assert np.array_equal(pixels(folder / name), pixels(tmp_path / "cli" / name)), name
    made = (folder / "xyz_grid-00.png").stat().st_mtime_ns
    again = cli(*args, "-o", tmp_path / "out", "--json")
    assert again.code == 0 and (folder / "xyz_grid-00.png").stat().st_mtime_ns == made  # resumed: nothing remade
