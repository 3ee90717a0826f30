"""One memory measure (io/memory.py), within the cgroup's limit, for every reader of it."""
import torch


def test_available_memory_holds_to_the_cgroup_limit_everywhere(tmp_path, monkeypatch):
    from milan_lab.data import images
    from milan_lab.io import memory
    from milan_lab.jobs import teacher_cache
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    assert memory.available_memory() == 600_000
    assert images.available_memory() == 600_000
    assert teacher_cache.available_bytes(torch.device("cpu")) == 600_000
    (tmp_path / "memory.max").write_text("max\n")  # no limit: the machine's own free memory
    assert memory.available_memory() > 600_000
