"""SIGTERM unwinds like Ctrl-C (no temporary file survives a save), and an input is read once
(a named pipe or /dev/stdin works, issue 13)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resshift_core.image_io import load_image

ROOT = Path(__file__).resolve().parents[1]

SLOW_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from resshift_core import cli
    from resshift_core.image_io.atomic_write import write_atomic

    def slow(f):
        f.write(b"half")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)  # SIGTERM arrives here, mid-save

    with cli.sigterm_as_interrupt():
        try:
            write_atomic(Path(sys.argv[1]), slow)
        except cli.Terminated:
            sys.exit(143)
    """
)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_sigterm_during_a_save_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the save is under way
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
    assert list(tmp_path.iterdir()) == []  # neither the temporary file nor a half-written output


@pytest.mark.skipif(os.name == "nt", reason="named pipes")
def test_a_named_pipe_is_read_once(tmp_path):
    pixels = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{tmp_path / 'a.png'}' > '{fifo}'"])
    try:
        loaded = load_image(fifo)
    finally:
        writer.wait(timeout=30)
    assert loaded.rgb.shape == (3, 5, 7)
    np.testing.assert_array_equal((loaded.rgb * 255).round().byte().permute(1, 2, 0).numpy(), pixels)


def test_stdin_is_read_once(tmp_path):
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(tmp_path / "a.png")
    code = "from resshift_core.image_io import load_image; print(tuple(load_image('/dev/stdin').rgb.shape))"
    with open(tmp_path / "a.png", "rb") as f:
        out = subprocess.run(
            [sys.executable, "-c", code], stdin=f, capture_output=True, text=True, cwd=ROOT, check=False
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 4, 6)"
