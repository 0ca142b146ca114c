"""tools/compare_runs.py: loss curves of runs at equal training time, a table, one-line errors."""
import json

from PIL import Image

from tool_testing import load_tool
from infd.training.run_dir import training_minutes


def write_log(folder, rows):
    folder.mkdir(parents=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_training_minutes_count_steps_over_speed_not_pauses():
    rows = [{"step": 60, "steps_per_s": 1.0, "time": 0}, {"step": 120, "steps_per_s": 2.0, "time": 10_000},
            {"step": 180, "time": 20_000}]
    assert training_minutes(rows) == [1.0, 1.5, 1.5]


def test_runs_compare_at_the_shortest_runs_length(tmp_path, capsys):
    tool = load_tool("compare_runs")
    fast = write_log(tmp_path / "fast", [{"step": 60 * i, "loss": 1.0 / i, "steps_per_s": 2.0} for i in range(1, 41)])
    slow = write_log(tmp_path / "slow", [{"step": 30 * i, "loss": 2.0 / i, "steps_per_s": 1.0} for i in range(1, 21)])
    out = tmp_path / "plot.png"
    assert tool.main([str(fast), str(slow), "--out", str(out), "--tail", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # fast: 40 lines of 30 s; slow: 20 lines of 30 s -> both at 10 min, fast at its line 20 there
    assert lines[2] == "| fast | 2400 | 20.0 | 0.0250 | 0.0500 |"
    assert lines[3] == "| slow | 600 | 10.0 | 0.1000 | 0.1000 |"
    with Image.open(out) as image:
        assert image.size[0] > 100
    assert tool.main([str(fast), "--out", str(fast / "log.jsonl")]) == 2
    assert tool.main([str(fast), "--key", "l1", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "no log.jsonl lines with 'l1'" in err
