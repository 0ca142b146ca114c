"""Shared pytest set-up: deterministic torch, ``--runslow`` for the long tests, ``gpu`` tests only with CUDA."""
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="gpu: needs CUDA (tools/check_gpu.py runs these on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not torch.cuda.is_available():
            item.add_marker(no_gpu)
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    # Tests use tiny models: one thread avoids oversubscription (subprocesses get OMP_NUM_THREADS=1).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
