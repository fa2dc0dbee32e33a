"""Atomic writes: the mode a plain open() gives, nothing left behind, read-only folders refused up front."""

import os
import stat

import pytest

from genimg.files import atomic_save


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_of_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_save(tmp_path / "a.bin", lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_generated_pngs_and_contact_sheets_are_readable_by_others(cli, tmp_path, tiny_models):
    old = os.umask(0o022)
    try:
        assert cli("txt2img", "x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "1",
                   "-o", tmp_path / "a.png").code == 0
        (tmp_path / "p.txt").write_text("a star\n")
        assert cli("batch", tmp_path / "p.txt", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2",
                   "--grid", "-o", tmp_path / "b").code == 0
    finally:
        os.umask(old)
    for path in [tmp_path / "a.png", *(tmp_path / "b").glob("*.png")]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path


def _read_only(monkeypatch, folder):
    """Root may write anywhere, so the writability check is told this folder is read-only."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if os.path.abspath(path) == str(folder) and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", ["txt2img", "batch", "lora-train", "learn"])
def test_a_read_only_folder_is_one_line_and_exit_2_for_every_writer(cli, tmp_path, tiny_models, monkeypatch, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    target = locked / "new"
    (tmp_path / "p.txt").write_text("a star\n")
    (tmp_path / "data").mkdir()
    args = {
        "txt2img": ("txt2img", "x", "-m", tiny_models["sd"], "-o", target / "a.png"),
        "batch": ("batch", tmp_path / "p.txt", "-m", tiny_models["sd"], "-o", target),
        "lora-train": ("lora-train", tmp_path / "data", "-m", tiny_models["sd"], "--max-steps", "1", "-o", target),
        "learn": ("learn", "ddpm", "-o", target, "--epochs", "1"),
    }[command]
    result = cli(*args)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and "not writable" in result.err and "Errno" not in result.err
    assert list(locked.iterdir()) == []


def test_a_failed_run_leaves_no_empty_folder(cli, tmp_path, tiny_models):
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "--lora", tmp_path / "missing.safetensors",
                 "-o", tmp_path / "out" / "deep")
    assert result.code == 2
    assert not (tmp_path / "out").exists()
