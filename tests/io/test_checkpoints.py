"""Checkpoint saving (io/checkpoints.py) on a full disk: one DiskFull naming the file, the partial file removed,
the previous checkpoint whole; a disk that cannot hold the tensors is refused before anything is written."""
import errno

import pytest
import torch

from milan_lab.errors import DiskFull


@pytest.mark.parametrize("failure", ["torch", "os"])
def test_a_full_disk_while_saving(failure, monkeypatch, tmp_path):
    from milan_lab.io import checkpoints as ck
    ck.save_checkpoint(tmp_path, 1, {"w": torch.ones(1000)})
    real_save = torch.save

    def full_disk(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        if failure == "torch":
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: file write failed")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFull, match=r"step_00000002\.pt"):
        ck.save_checkpoint(tmp_path, 2, {"w": torch.ones(1000)})
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]  # no temporary left behind
    assert torch.equal(ck.load_checkpoint(tmp_path / "step_00000001.pt")["w"], torch.ones(1000))


def test_a_really_full_disk_is_reported_as_disk_full(small_disk):
    from milan_lab.io.checkpoints import load_checkpoint, save_checkpoint
    first = save_checkpoint(small_disk, 1, {"w": torch.ones(1000)})
    # tensors that fit in what is free but whose file (one zip record per tensor) does not:
    # torch's zip writer fails with "unexpected pos", which must read as a full disk
    (small_disk / "filler").write_bytes(b"0" * (1024 * 1024 - 200 * 1024))
    many_small = {f"w{i}": torch.randn(10) for i in range(2000)}
    with pytest.raises(DiskFull, match=r"step_00000002\.pt"):
        save_checkpoint(small_disk, 2, many_small)
    # tensors larger than the free space: refused before anything is written (the size it needs is named)
    with pytest.raises(DiskFull, match=r"step_00000003\.pt.*1\.2 MB"):
        save_checkpoint(small_disk, 3, {"w": torch.ones(300_000)})
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "step_00000001.pt"]
    assert torch.equal(load_checkpoint(first)["w"], torch.ones(1000))
