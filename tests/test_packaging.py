"""Package boundaries: renderers/ and data/ install as infd.renderers / infd.data, they depend on
nothing of infd but its leaf modules, and a non-editable install renders from any folder."""
import ast
import configparser
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"infd": ROOT / "infd", "infd.renderers": ROOT / "renderers", "infd.data": ROOT / "data"}
LEAVES = {"infd.config", "infd.atomic"}  # the shared helpers: standard library (and yaml) only


def _packages_in_tree() -> set[str]:
    found = set()
    for name, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((name, *parts)))
    return found


def _infd_imports(path: Path) -> set[str]:
    """Absolute ``infd...`` modules imported by a file (relative imports stay inside their package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "infd" or n.startswith("infd.")}


def test_setup_cfg_lists_every_package_and_maps_the_top_level_folders():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    assert listed == _packages_in_tree()
    mapping = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    assert mapping == {"infd.renderers": "renderers", "infd.data": "data"}


@pytest.mark.parametrize("folder", ["renderers", "data"])
def test_renderers_and_data_use_only_the_leaf_modules_of_infd(folder):
    allowed = LEAVES | {"infd.renderers", "infd.data"}
    for path in (ROOT / folder).rglob("*.py"):
        for name in _infd_imports(path):
            assert any(name == a or name.startswith(a + ".") for a in allowed), f"{path}: imports {name}"
    if folder == "renderers":  # the renderers know nothing of the data layer
        for path in (ROOT / folder).rglob("*.py"):
            assert not any(n.startswith("infd.data") for n in _infd_imports(path)), path


def test_leaf_modules_import_nothing_of_infd():
    for leaf in LEAVES:
        path = ROOT / (leaf.replace(".", "/") + ".py")
        assert _infd_imports(path) == set(), path


def test_a_users_data_package_is_not_shadowed():
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('data'))"],
                         cwd="/", capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "None", out.stdout + out.stderr


@pytest.mark.slow
def test_non_editable_install_renders_from_another_folder(tmp_path):
    """``pip install .`` into a fresh virtual environment, then ``tools/render.py`` from elsewhere."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # torch etc. from the system
    python = env_dir / "bin" / "python"
    run_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "infd", "renderers", "data"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-cache-dir", str(source)],
                   check=True, env=run_env, timeout=600, capture_output=True)
    where = tmp_path / "elsewhere"
    where.mkdir()
    probe = subprocess.run([str(python), "-c", "import infd.renderers, infd.data; print(infd.renderers.__file__)"],
                           cwd=where, env=run_env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert str(env_dir) in probe.stdout  # the installed copy, not the checkout
    out = subprocess.run([str(python), str(ROOT / "tools" / "render.py"), "--size", "64", "--steps", "2",
                          "--out", "sample.png"],
                         cwd=where, env={**run_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert (where / "sample.png").stat().st_size > 0
