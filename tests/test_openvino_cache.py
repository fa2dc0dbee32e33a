"""What the OpenVINO route leaves in genimg's cache, listed per weights key and freed (genimg.openvino_cache),
on files laid out as the route names them (no OpenVINO needed)."""

import os

from genimg.openvino_cache import (UNKNOWN, compiled_folder, conversions, ir_name, matching, record, remove,
                                   weights_path)


def _convert(folder, key, shapes, model, used_at, ir_bytes=300):
    """The files a conversion leaves: IR pair, sidecar, weights copy, compiled blob."""
    name = ir_name(key, True, shapes)
    (folder / f"{name}.bin").write_bytes(b"w" * ir_bytes)
    xml = folder / f"{name}.xml"
    xml.write_text("<net/>")
    record(xml, model, shapes)
    weights_path(folder, key).write_bytes(b"s" * 200)
    compiled_folder(folder, key).mkdir(parents=True, exist_ok=True)
    (compiled_folder(folder, key) / f"{ir_bytes}.blob").write_bytes(b"c" * 100)
    os.utime(xml, (used_at, used_at))


def test_listed_per_weights_least_recently_used_first_with_sizes_and_every_byte(tmp_path):
    sd15 = [(2, 4, 64, 64), (), (2, 77, 768)]
    _convert(tmp_path, "aaaa", sd15, "sd15", used_at=2_000_000_000)
    _convert(tmp_path, "aaaa", [(1, 4, 96, 64), (), (1, 77, 768)], "sd15", used_at=1_000_000_000, ir_bytes=400)
    _convert(tmp_path, "bbbb", [(1, 4, 128, 128), (), (1, 77, 2048), (1, 1280), (1, 6)], "sdxl-lightning",
             used_at=1_500_000_000)
    (tmp_path / ".aaaa-winograd-9x4x8x8.xml.tmp.xml").write_text("half-written")  # a conversion in progress
    (tmp_path / "compiled" / "old.blob").write_bytes(b"o" * 50)  # blobs from before the per-key folders
    legacy_ir = tmp_path / "cccc-2x4x64x64-1-2x77x768.xml"  # an IR from before the kinds and sidecars
    legacy_ir.write_text("<net/>")
    os.utime(legacy_ir, (1_200_000_000, 1_200_000_000))

    kept = conversions(tmp_path)
    by_key = {c.key: c for c in kept}
    assert [c.key for c in kept] == ["compiled", "cccc", "bbbb", "aaaa"]  # the last used last; no time (blobs) first
    sd = by_key["aaaa"]
    assert sd.model == "sd15" and sorted(sd.sizes) == ["512x512 batch 2", "512x768 batch 1"]
    assert sd.last_used == 2_000_000_000
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*")
                  if p.is_file() and ("aaaa" in p.parts or p.name.startswith("aaaa-")))
    assert sd.bytes == on_disk == 300 + 400 + 2 * len("<net/>") + 200 + 100 + 100 + sum(
        p.stat().st_size for p in tmp_path.glob("aaaa-*.json"))
    assert by_key["bbbb"].sizes == ["1024x1024 batch 1"] and by_key["bbbb"].model == "sdxl-lightning"
    assert by_key["cccc"].model == UNKNOWN and by_key["cccc"].sizes == ["?"]
    assert by_key["compiled"].bytes == 50

    assert [c.key for c in matching(kept, "sd15")] == ["aaaa"]
    assert [c.key for c in matching(kept, "bb")] == ["bbbb"]
    assert len(matching(kept, "all")) == 4 and matching(kept, "sd2") == []
    assert remove(sd) == on_disk
    assert sorted(c.key for c in conversions(tmp_path)) == ["bbbb", "cccc", "compiled"]
    assert not compiled_folder(tmp_path, "aaaa").exists() and (tmp_path / ".aaaa-winograd-9x4x8x8.xml.tmp.xml").exists()


def test_an_empty_or_missing_cache_lists_nothing(tmp_path):
    assert conversions(tmp_path / "never-made") == [] and conversions(tmp_path) == []
