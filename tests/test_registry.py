"""weights/registry.json: its format, and entries that refer to what exists."""

import json

import pytest

from resshift_core import registry


def test_the_file_keeps_its_format():
    """One-space indents and a final newline, so an edit shows as the lines it changes."""
    path = registry.weights_dir() / "registry.json"
    text = path.read_text(encoding="utf-8")
    assert json.dumps(json.loads(text), indent=1) + "\n" == text


def test_entries_name_presets_and_vaes_that_exist():
    names = {e.name for e in registry.entries()}
    presets = set(registry.preset_names())
    for entry in registry.entries():
        if entry.part == "unet":
            assert entry.preset in presets, entry.name
            assert entry.vae is None or entry.vae in names, entry.name
        assert entry.shipped or entry.downloadable or entry.download_page, f"{entry.name}: no way to get it"


def test_a_download_page_is_for_files_without_a_direct_address():
    by_hand = [e for e in registry.entries() if e.download_page]
    assert [e.name for e in by_hand] == ["rsd_x4"]
    for entry in by_hand:
        assert not entry.downloadable and str(entry.download_page).startswith("https://")


def test_unknown_fields_are_refused(monkeypatch):
    data = json.loads((registry.weights_dir() / "registry.json").read_text(encoding="utf-8"))
    data["checkpoints"][0]["downlod_page"] = "https://example.org"
    monkeypatch.setattr(registry, "_registry_json", lambda: data)
    with pytest.raises(ValueError, match="unknown fields \\['downlod_page'\\]"):
        registry.entries()
