"""atomic_write makes the rename durable too: after ``os.replace`` it fsyncs the folder that holds the file
(POSIX), so a crash right after a write keeps the new file rather than the old one."""
import os
import stat

import pytest

from milan_lab.io import weights


@pytest.mark.skipif(not hasattr(os, "O_DIRECTORY"), reason="directories cannot be fsynced here")
def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "result.json"
    synced, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        synced.append(("folder" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        real_replace(src, dst)
        synced.append(("replace", None))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    weights.atomic_write(target, lambda tmp: tmp.write_text("{}"))
    assert [kind for kind, _ in synced] == ["file", "replace", "folder"]
    assert synced[-1][1] == target.parent.stat().st_ino  # the folder the file was renamed in


def test_without_o_directory_the_write_still_succeeds(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_DIRECTORY", raising=False)
    assert weights.atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x")).read_text() == "x"
