"""Property-based tests (hypothesis) over what users and files can say: whatever arrives, the
answer is a result or one of our own errors (a sentence), never another exception (issue 13).
Sized for the suite; `scripts/fuzz.py` runs the same properties far longer before a release."""

import io
import json
import os
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resshift_core.checkpoints.io import read_checkpoint
from resshift_core.cli import build_parser
from resshift_core.errors import ResShiftError
from resshift_core.image_io import load_image
from resshift_core.presets import DiffusionPreset

# random bytes that start like a pickle make torch warn about the protocol before refusing them
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")

# scripts/fuzz.py raises this for a long run before a release
EXAMPLES = int(os.environ.get("RESSHIFT_FUZZ_EXAMPLES", "60"))
SUITE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
PRESET_KEYS = list(DiffusionPreset().to_dict())


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png_bytes()


def _outcome(call):
    """(result, None), or (None, our error's message); any other exception propagates."""
    try:
        return call(), None
    except ResShiftError as exc:
        return None, str(exc)


@SUITE
@given(st.dictionaries(st.sampled_from(PRESET_KEYS), JSON, max_size=8) | JSON)
def test_any_preset_metadata_gives_a_preset_or_a_sentence(value):
    base = DiffusionPreset().to_dict()
    given_dict = {**base, **value} if isinstance(value, dict) else value
    preset, refusal = _outcome(lambda: DiffusionPreset.from_dict(given_dict))
    if preset is None:
        assert refusal and "\n" not in refusal  # one sentence
    else:
        assert DiffusionPreset.from_dict(preset.to_dict()) == preset  # what was accepted round-trips


@SUITE
@given(st.binary(max_size=256))
def test_any_bytes_as_a_checkpoint_give_a_sentence(tmp_path, data):
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(ResShiftError):
        read_checkpoint(path)


@SUITE
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=4), st.integers(0, 2**64 - 1))
def test_a_safetensors_header_that_lies_gives_a_sentence(tmp_path, header, length):
    """A JSON header of any shape, and a declared header length that may exceed the file."""
    body = json.dumps(header).encode()
    path = tmp_path / "lying.safetensors"
    path.write_bytes(struct.pack("<Q", min(length, len(body)) if length % 2 else length) + body)
    try:
        state_dict, _ = read_checkpoint(path)
    except ResShiftError:
        return
    assert all(isinstance(v, torch.Tensor) for v in state_dict.values())


@SUITE
@given(st.integers(0, len(PNG) - 1), st.integers(0, 255), st.integers(1, len(PNG)))
def test_a_damaged_or_cut_off_image_gives_a_sentence(tmp_path, where, byte, keep):
    data = bytearray(PNG)
    data[where] = byte
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data[:keep]))
    loaded, refusal = _outcome(lambda: load_image(path))
    if loaded is None:
        assert refusal is not None and str(path) in refusal
    else:
        assert loaded.rgb.ndim == 3 and torch.isfinite(loaded.rgb).all()


OPTIONS = [
    "--steps",
    "--seed",
    "--tile",
    "--tile-overlap",
    "--vae-tile",
    "--device",
    "--dtype",
    "--format",
    "--color-fix",
    "--spacing",
    "--task",
]


@SUITE
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), st.text(max_size=8)), max_size=4))
def test_any_upscale_options_parse_or_exit_with_usage(options):
    argv = ["upscale", "in.png", "-o", "out"] + [part for pair in options for part in pair]
    code = None
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (None, 2)  # parsed, or argparse's one usage line (never a traceback)
