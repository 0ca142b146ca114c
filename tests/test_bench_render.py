"""The render benchmark tool runs end to end on a tiny problem and prints its contract lines."""
import runpy
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "bench_render.py"


def test_bench_render_tiny_run_prints_rates_and_speedup(capsys):
    main = runpy.run_path(str(TOOL))["main"]  # no --threads: in this process the thread count stays the tests'
    assert main(["--size", "24", "--field", "6", "--channels", "4", "--hidden", "32", "--repeats", "2",
                 "--bf16-size", "8", "--workers", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rates = {line.split(":")[0]: float(line.split()[1]) for line in lines if line.endswith("MP/s")}
    assert set(rates) == {"reference_fp32", "ours_fp32", "ours_bf16"} and min(rates.values()) > 0
    name, value = lines[-1].split("=")
    assert name == "speedup_vs_reference" and float(value) > 0


def test_bench_render_rejects_bad_arguments(capsys):
    main = runpy.run_path(str(TOOL))["main"]
    with pytest.raises(SystemExit):
        main(["--hidden", "33"])
    assert "multiple of 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--workers", "0"])
    assert "--workers must be positive" in capsys.readouterr().err
