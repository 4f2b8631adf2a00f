"""The training config: TOML round trips, the [model] table as overrides of UNetConfig, and every
config mistake refused before any work with one sentence naming the field and a value that works."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resshift_core import registry
from resshift_core.models.unet import UNetConfig
from resshift_core.train import ConfigError, TrainConfig
from resshift_core.train.__main__ import main
from resshift_core.train.checks import check_config
from resshift_core.train.config import SECTIONS
from resshift_core.train.model_section import DEFAULT_ARCHITECTURE, FIXED_UNET_FIELDS, UNET_HELP, unet_keys

ROOT = Path(__file__).resolve().parents[1]

# The [model] table as the previous training code wrote it into runs/NAME/config.toml.
OLD_RUN_MODEL_TABLE = """
[model]
preset = "pixel_realsr_x4_s4"
vae_path = ""
init_checkpoint = ""
image_size = 32
in_channels = 3
model_channels = 32
out_channels = 3
num_res_blocks = [1, 1]
attention_resolutions = [16]
dropout = 0.0
channel_mult = [1, 2]
num_head_channels = 16
use_scale_shift_norm = true
resblock_updown = false
swin_depth = 2
swin_embed_dim = 32
window_size = 4
mlp_ratio = 2.0
cond_mask = false
lq_size = 32
pixel_unshuffle = 1
"""


def pixel_config(data: Path, out: Path) -> TrainConfig:
    """A small valid pixel-space config (nothing is built: only checked)."""
    cfg = TrainConfig.from_toml(OLD_RUN_MODEL_TABLE)
    return (
        cfg.with_section("data", train_dir=str(data), gt_size=32)
        .with_section("degradation", kind="bicubic_x4")
        .with_section("train", batch_size=4, microbatch=2, device="cpu", amp="none")
        .with_section("log", out_dir=str(out))
    )


@pytest.fixture
def valid(tmp_path) -> TrainConfig:
    (tmp_path / "hr").mkdir()
    cfg = pixel_config(tmp_path / "hr", tmp_path / "run")
    check_config(cfg)
    return cfg


def test_config_round_trips_through_toml(tmp_path):
    cfg = pixel_config(tmp_path / "data", tmp_path / "out")
    cfg = cfg.with_section("degradation", overrides={"second_order_prob": 0.3, "jpeg_range": [40.0, 90.0]})
    text = cfg.to_toml(comments=True)
    assert TrainConfig.from_toml(text) == cfg
    path = tmp_path / "c.toml"
    cfg.save(path)
    assert TrainConfig.load(path) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for name, section in SECTIONS.items():  # every key has a default and a meaning
        for key in section.table_keys():
            assert key.help, f"[{name}] {key.name} has no help"


def test_unknown_keys_and_tables_name_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"train\.stepz is not a setting; valid keys of \[train\]: steps, "):
        TrainConfig.from_toml("[train]\nstepz = 3\n")
    with pytest.raises(ConfigError, match=r"model\.use_fp16 is not a setting; .*image_size, in_channels"):
        TrainConfig.from_toml("[model]\nuse_fp16 = true\n")  # fixed by training: train.amp picks the dtype
    with pytest.raises(ConfigError, match=r"\[modle\] is not a config table; use the tables model, data"):
        TrainConfig.from_toml("[modle]\nimage_size = 3\n")


@pytest.mark.parametrize(
    ("toml", "field", "fix"),
    [
        ('[train]\nbatch_size = "16"', "train.batch_size", "train.batch_size = 96"),
        ("[train]\nchannels_last = 1", "train.channels_last", "train.channels_last = true"),
        ("[optim]\nlr = true", "optim.lr", "optim.lr = 5e-05"),
        ('[train]\nt_weights = ["a"]', "train.t_weights", "train.t_weights = []"),
        ("[model]\nnum_res_blocks = 2.5", "model.num_res_blocks", "model.num_res_blocks = [2, 2, 2, 2]"),
        ('[model]\nimage_size = "64"', "model.image_size", "model.image_size = 64"),
    ],
)
def test_wrong_types_name_the_field_and_its_default(toml, field, fix):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_toml(toml)
    assert err.value.field == field and fix in str(err.value)


def test_an_integer_where_a_number_is_wanted_is_that_number():
    cfg = TrainConfig.from_toml("[optim]\nlr = 1\n[model]\nmlp_ratio = 4\n")
    assert isinstance(cfg.optim.lr, float)
    assert isinstance(cfg.model.unet.mlp_ratio, float)
    assert cfg.optim.lr == 1.0


def test_model_keys_are_the_unet_config_fields_with_its_defaults():
    names = [f.name for f in dataclasses.fields(UNetConfig)]
    keys = [k.name for k in unet_keys()]
    assert keys == [n for n in names if n not in FIXED_UNET_FIELDS]  # nothing re-declared, nothing missing
    assert set(UNET_HELP) == set(keys)
    entry = registry.find(DEFAULT_ARCHITECTURE)
    assert entry is not None and entry.architecture
    published = entry.architecture
    default = TrainConfig().model.unet
    assert default == UNetConfig.from_published(published)
    for f in dataclasses.fields(UNetConfig):  # what the published architecture leaves out: UNetConfig's default
        if f.name not in published and f.default is not dataclasses.MISSING:
            assert getattr(default, f.name) == f.default, f.name
    # a key overrides one field and leaves the rest
    cfg = TrainConfig.from_toml("[model]\nswin_depth = 1\n")
    assert cfg.model.unet == dataclasses.replace(default, swin_depth=1)


def test_an_impossible_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[model\] describes no buildable UNet: lq_size 96 must be image_size 64"):
        TrainConfig.from_toml("[model]\nlq_size = 96\n")


def test_old_run_folders_and_shipped_configs_load():
    cfg = TrainConfig.from_toml(OLD_RUN_MODEL_TABLE)
    assert cfg.model.unet.channel_mult == (1, 2) and cfg.model.unet.num_res_blocks == (1, 1)
    configs = sorted((ROOT / "configs").glob("*.toml"))
    assert len(configs) >= 6
    for path in configs:
        cfg = TrainConfig.load(path)
        assert TrainConfig.from_toml(cfg.to_toml()) == cfg
    # the shipped model's recipe builds the shipped model's network
    tiny = TrainConfig.load(ROOT / "configs" / "tiny_pixel_realsr_x4.toml").model.unet
    entry = registry.find("resshift_tiny_realsr_x4")
    assert entry is not None and entry.architecture
    shipped = UNetConfig.from_published(entry.architecture)
    assert tiny.canonical() == shipped.canonical()


def test_print_config_shows_every_key_with_its_default_and_meaning():
    out = subprocess.run(
        [sys.executable, "-m", "resshift_core.train", "--print-config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert TrainConfig.from_toml(out) == TrainConfig()
    lines = out.splitlines()
    for name, section in SECTIONS.items():
        for key in section.table_keys():
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key.name} = "))
            assert lines[at - 1] == f"# {key.help}", (name, key.name)
    assert "# peak learning rate" in out and "# Swin embedding width" in out


def _fix_value(err: ConfigError) -> str:
    found = re.search(r"= ([0-9.]+)", err.fix)
    assert found, err.fix
    return found.group(1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"train": {"batch_size": 6}}, "train.batch_size"),  # 2 processes x microbatch 2
        ({"train": {"microbatch": 0}}, "train.microbatch"),
        (
            {"degradation": {"kind": "realsr_x4", "mix_kind": "bicubic_x4", "mix_fraction": 0.1}},
            "degradation.mix_fraction",
        ),
        (
            {"degradation": {"kind": "realsr_x4", "mix_kind": "bicubic_x4", "mix_fraction": 1.5}},
            "degradation.mix_fraction",
        ),
        ({"degradation": {"kind": "realsr_x4", "mix_kind": "realsr_x2", "mix_fraction": 0.5}}, "degradation.mix_kind"),
        ({"degradation": {"kind": "face", "mix_kind": "bicubic_x4", "mix_fraction": 0.5}}, "degradation.mix_kind"),
        ({"degradation": {"kind": "blurry"}}, "degradation.kind"),
        ({"degradation": {"overrides": {"second_order_probability": 0.3}}}, "degradation.overrides"),
        ({"train": {"amp": "fp8"}}, "train.amp"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"train": {"t_weights": [1, 1]}}, "train.t_weights"),
        ({"train": {"steps": 0}}, "train.steps"),
        ({"log": {"log_every": 0}}, "log.log_every"),
        ({"log": {"export_dtype": "fp64"}}, "log.export_dtype"),
        ({"model": {"preset": "realsr_x4_s4"}}, "model.vae_path"),  # latent preset without a VQGAN
        ({"model": {"vae_path": "weights/autoencoder_vq_f4.pth"}}, "model.vae_path"),  # pixel preset with one
        ({"model": {"preset": "realsr_x5"}}, "model.preset"),
        ({"model": {"init_checkpoint": "missing.safetensors"}}, "model.init_checkpoint"),
        ({"data": {"train_dir": "no/such/folder"}}, "data.train_dir"),
        ({"data": {"rescale_size": 16}}, "data.rescale_size"),
        ({"data": {"gt_size": 36}}, "data.gt_size"),  # not a multiple of the pixel-space UNet's 16
        ({"optim": {"betas": [0.9]}}, "optim.betas"),
        ({"model": {"model_channels": 16}}, "[model]"),  # GroupNorm needs multiples of 32 channels
    ],
)
def test_config_errors_name_the_field_in_one_line(valid, changes, field):
    cfg = valid
    for table, values in changes.items():
        cfg = cfg.with_section(table, **values)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, world=2)
    assert err.value.field == field, str(err.value)
    assert "\n" not in str(err.value) and err.value.fix


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("train", "batch_size", 6),
        ("train", "batch_size", 3),
        ("degradation", "mix_fraction", 0.1),
        ("degradation", "mix_fraction", 0.9),
    ],
)
def test_the_value_a_config_error_suggests_works(valid, table, key, value):
    cfg = valid.with_section("degradation", kind="realsr_x4", mix_kind="bicubic_x4")
    cfg = cfg.with_section("degradation", mix_fraction=0.5).with_section(table, **{key: value})
    with pytest.raises(ConfigError) as err:
        check_config(cfg, world=2)
    suggested = float(_fix_value(err.value))
    check_config(cfg.with_section(table, **{key: type(value)(suggested)}), world=2)


def test_the_command_line_prints_one_line_on_rank_0_only(valid, tmp_path, capsys, monkeypatch):
    path = tmp_path / "bad.toml"
    path.write_text(valid.with_section("train", batch_size=5).to_toml())
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: train.batch_size = 5 does not split") and err.count("\n") == 1
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([str(path)]) == 2  # the same status, and silence
    assert capsys.readouterr().err == ""


def test_resume_from_a_missing_file_is_a_config_error(valid, capsys):
    from resshift_core.train.checkpointing import resume_path

    with pytest.raises(ConfigError, match=r"--resume no/such\.pt is not a checkpoint file"):
        resume_path("no/such.pt", "runs/x/checkpoints")
    assert resume_path("none", "x") is None and resume_path("auto", "no/such/folder") is None
