"""The one device resolver (infd.devices), on this machine and on a pretend machine with two GPUs."""
import pytest
import torch

from infd.devices import DeviceError, resolve_device
from infd.rendering.job import resolve_device as resolve_render_device
from infd.rendering.distributed import DistContext
from infd.rendering.request import RequestError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_cuda(no_gpu):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cuda_is_one_line(no_gpu, name):
    with pytest.raises(DeviceError, match=f"^--device {name}: CUDA is not available on this machine$"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps", ""])
def test_unknown_names_are_refused(name):
    with pytest.raises(DeviceError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_cuda_indices_on_two_gpus(two_gpus):
    assert resolve_device("auto") == torch.device("cuda")  # unindexed: the current device
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda", default_index=1) == torch.device("cuda", 1)
    assert resolve_device("auto", default_index=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:1", default_index=0) == torch.device("cuda", 1)  # an explicit index wins
    with pytest.raises(DeviceError, match="^--device cuda:2: only 2 CUDA device"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="only 2 CUDA device"):
        resolve_device("cuda", default_index=2)


def test_render_jobs_resolve_through_it_with_the_local_rank(two_gpus):
    assert resolve_render_device("cuda", DistContext(local_rank=1)) == torch.device("cuda", 1)
    assert resolve_render_device("auto") == torch.device("cuda", 0)
    with pytest.raises(RequestError, match="only 2 CUDA device"):
        resolve_render_device("cuda", DistContext(local_rank=3))


def test_render_jobs_keep_their_error_type(no_gpu):
    assert resolve_render_device("cpu", DistContext(local_rank=1)) == torch.device("cpu")
    with pytest.raises(RequestError, match="CUDA is not available"):
        resolve_render_device("cuda:0")


def test_dist_timeout_reads_the_environment_and_reaches_both_process_groups(monkeypatch):
    """Training and rendering ranks wait INFD_DIST_TIMEOUT_S for each other (torch's 30 minutes by default)."""
    import datetime

    import torch.distributed

    from infd.devices import DeviceError, dist_timeout
    from infd.rendering.distributed import init_distributed
    from infd.training.accel import make_accelerator

    monkeypatch.delenv("INFD_DIST_TIMEOUT_S", raising=False)
    assert dist_timeout() == datetime.timedelta(minutes=30)
    monkeypatch.setenv("INFD_DIST_TIMEOUT_S", "45")
    assert dist_timeout() == datetime.timedelta(seconds=45)
    seen = {}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **kw: seen.update(kw))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    init_distributed("cpu")
    assert seen["timeout"] == datetime.timedelta(seconds=45)
    monkeypatch.setenv("WORLD_SIZE", "1")
    handlers = make_accelerator("no", "/tmp", cpu=True, trackers=()).init_handler
    assert handlers is not None and handlers.timeout == datetime.timedelta(seconds=45)
    for bad in ["0", "-3", "soon", "nan"]:
        monkeypatch.setenv("INFD_DIST_TIMEOUT_S", bad)
        with pytest.raises(DeviceError, match="INFD_DIST_TIMEOUT_S must be a positive number"):
            dist_timeout()
