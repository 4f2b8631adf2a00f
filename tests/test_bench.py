"""`python -m resshift_core bench`: each setting measured in its own process, figures printed."""

import json

from resshift_core.cli import main


def test_bench_measures_a_setting_in_a_subprocess(capsys):
    code = main(
        [
            "bench",
            "--json",
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--size",
            "8",
            "--size",
            "24",
            "--repeat",
            "0",
            "--threads",
            "1",
            "--model",
            "untrained-tiny",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["size"] for r in rows] == ["8->32", "24->96"]
    for row in rows:
        assert row["model"] == "untrained-tiny" and row["device"] == "cpu" and row["threads"] == 1
        assert row["seconds"] > 0 and row["gflops"] > 0 and row["peak_mb"] > 50
        per_px = row["seconds"] / int(row["size"].split("->")[1]) ** 2 * 1e6
        assert abs(row["us_per_px"] - per_px) < 0.01 * per_px
    assert rows[1]["gflops"] > 5 * rows[0]["gflops"]  # 9x the pixels: counted, not assumed


def test_bench_measures_a_checkpoint_by_name(capsys):
    from resshift_core import registry

    name = next(e.name for e in registry.entries() if e.shipped and e.part == "unet")
    code = main(
        [
            "bench",
            "--json",
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--size",
            "16",
            "--repeat",
            "0",
            "--threads",
            "1",
            "--model",
            name,
        ]
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0 and rows[0]["model"] == name and rows[0]["size"] == "16->64", rows


def test_bench_reports_a_failed_setting_and_exits_nonzero(capsys):
    code = main(
        [
            "bench",
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--size",
            "8",
            "--repeat",
            "0",
            "--model",
            "/nonexistent/model.safetensors",
        ]
    )
    assert code == 1
    assert "FAILED" in capsys.readouterr().out
