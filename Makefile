# Two entry points, both used by the README: `make demo` (the main job) and `make test`.
PY ?= python3
PIP_INSTALL = $(PY) -m pip install -q -c constraints.txt

.PHONY: install demo test bench
install:
	$(PIP_INSTALL) -e ".[dev]"

demo: install
	$(PY) tools/render.py --size 1024 --out out/sample.png

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) tools/bench_render.py
