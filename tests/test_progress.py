"""Progress of the command lines: plain lines in logs, an estimate for long jobs, the render bars' units."""
import io

import pytest

from infd import progress as progress_module
from infd.progress import PlainProgress, format_seconds, progress

from test_render_cli import run


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_plain_progress_writes_a_line_per_tenth_and_no_cursor_codes(clock):
    out = io.StringIO()
    bar = progress("tiles", 50, "tile", file=out)
    assert isinstance(bar, PlainProgress)
    for _ in range(50):
        clock.now += 0.5
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0] == "tiles 5/50 tiles (10%) 2 s, about 22 s left"
    assert lines[-1] == "tiles 50/50 tiles (100%) 25 s"


def test_plain_progress_also_reports_slow_steps_and_its_end(clock):
    out = io.StringIO()
    bar = PlainProgress("sampling", 1000, "step", out)
    clock.now += 31
    bar.update(1)  # far from a tenth, but 30 s since the last line
    bar.update(1)
    bar.close()  # stopped early: one last line with where it stopped
    lines = out.getvalue().splitlines()
    assert lines == ["sampling 1/1000 steps (0%) 31 s, about 8.6 h left", "sampling 2/1000 steps (0%) 31 s, about 4.3 h left"]


def test_long_jobs_get_one_estimate(clock):
    calls = []
    bar = progress("tiles", 1000, "tile", file=io.StringIO(), estimate=calls.append)
    for _ in range(20):
        clock.now += 1.0
        bar.update(1)
    assert calls == [pytest.approx(997.0)]  # after 3 tiles in 3 s: 997 left at 1 s each
    quick = []
    bar = progress("tiles", 10, "tile", file=io.StringIO(), estimate=quick.append)
    for _ in range(10):
        clock.now += 1.0
        bar.update(1)
    assert quick == []  # 7 s left is not worth a line


def test_format_seconds():
    assert [format_seconds(s) for s in (5, 89, 600, 7200, 9000)] == ["5 s", "89 s", "10.0 min", "2.0 h", "2.5 h"]


def test_render_progress_counts_sampler_steps_and_tiles(tmp_path):
    result = run("--size", "64", "--tile", "32", "--steps", "4", "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("sampling 4/4 steps (100%)") for line in lines), result.stderr
    assert any(line.startswith("tiles 4/4 tiles (100%)") for line in lines), result.stderr
    assert "\r" not in result.stderr
