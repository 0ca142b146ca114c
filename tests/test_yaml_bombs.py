"""YAML alias bombs ("billion laughs") in a training config, a --set value or an inverse layout are refused
in one line before anything is built, in bounded time and memory; messages never format a huge value."""
import sys
import time
from pathlib import Path

import pytest

from process_testing import run_group
from infd.config import ConfigError, from_dict, load_config, parse_overrides, short_repr, yaml_load
from infd.inverse.layout import LayoutError, load_layout
from infd.training.ae_loop import AETrainConfig

ROOT = Path(__file__).resolve().parents[1]


def bomb(levels: int = 9, key: str = "max_steps") -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_a_bomb_config_is_one_config_error_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    start = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than") as err:
        load_config(AETrainConfig, path)
    assert time.monotonic() - start < 5 and len(str(err.value)) < 300 and "\n" not in str(err.value)


def flow_bomb(levels: int = 9) -> str:
    """The same bomb on one line (what fits in a --set value)."""
    items = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def test_a_bomb_in_set_is_refused():
    with pytest.raises(ConfigError, match="expands to more than"):
        parse_overrides(["max_steps=" + flow_bomb()])


def test_a_bomb_layout_is_one_layout_error(tmp_path):
    path = tmp_path / "layout.yaml"
    path.write_text(bomb(key="resolution"))
    with pytest.raises(LayoutError, match="expands to more than"):
        load_layout(path)


def test_small_aliases_still_load_and_long_values_are_cut_in_messages():
    assert yaml_load("base: &b {lr: 1.0e-4}\nopt: *b\n") == {"base": {"lr": 1e-4}, "opt": {"lr": 1e-4}}
    with pytest.raises(ConfigError) as err:
        from_dict(AETrainConfig, {"max_steps": ["x" * 10_000] * 10_000})
    assert len(str(err.value)) < 300
    assert len(short_repr("y" * 10_000)) <= 80 and short_repr(3) == "3"


def test_a_bomb_config_in_the_cli_stays_small(tmp_path):
    """tools/train.py --dry-run on a bomb: one line, exit 2, and the process stays far from gigabytes."""
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30)); "
            f"sys.argv = ['train.py', 'ae', '--config', {str(path)!r}, '--dry-run']; "
            f"runpy.run_path({str(ROOT / 'tools/train.py')!r}, run_name='__main__')")
    result = run_group([sys.executable, "-c", code], timeout=120, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "expands to more than" in lines[0], result.stderr
