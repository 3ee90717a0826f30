"""Each command module says how its commands take the local file that replaces a download (LOCAL_FILE_OPTIONS)
or why none does (CHECKPOINT_TEACHER_WORDS); the CLI reads them from the modules, keyed by real command names."""
import argparse

import pytest

from milan_lab import cli
from milan_lab.commands import COMMANDS, app, jobs, knn, predict, seg_probe, teacher, test
from milan_lab.errors import DownloadError


def _command_names() -> set:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_tables_live_in_the_command_modules_and_name_their_own_commands():
    assert app.LOCAL_FILE_OPTIONS == {"app": "--teacher-pretrained PATH"}
    assert jobs.LOCAL_FILE_OPTIONS == {"pretrain": "teacher_pretrained=PATH"}
    assert {**teacher.LOCAL_FILE_OPTIONS, **predict.LOCAL_FILE_OPTIONS, **test.LOCAL_FILE_OPTIONS} == dict.fromkeys(
        ("teacher", "predict", "test"), "--pretrained PATH")
    assert set(knn.CHECKPOINT_TEACHER_WORDS) == {"knn"} and set(seg_probe.CHECKPOINT_TEACHER_WORDS) == {"seg-probe"}
    names = _command_names()
    for module in COMMANDS:
        for table in ("LOCAL_FILE_OPTIONS", "CHECKPOINT_TEACHER_WORDS"):
            assert set(getattr(module, table, {})) <= names, (module.__name__, table)
    assert set(cli.LOCAL_FILE_OPTIONS) == {"app", "pretrain", "teacher", "predict", "test"}
    assert set(cli.CHECKPOINT_TEACHER_WORDS) == {"attention", "knn", "seg-probe"}


def test_a_download_error_names_the_commands_own_option():
    error = DownloadError("no network: the weights of ViT-B-16 are not in the local cache", option="pretrained")
    assert cli._in_cli_words(error, "predict").endswith("--pretrained PATH")
    assert cli._in_cli_words(error, "app").endswith("--teacher-pretrained PATH")


@pytest.mark.parametrize("command", ["attention", "knn", "seg-probe"])
def test_checkpoint_commands_name_no_option_they_lack(command):
    """A teacher download from a checkpoint's config, in the words of the command: these commands take no
    --pretrained, so the message points at the checkpoint's teacher_pretrained instead."""
    error = DownloadError("no network (huggingface.co: refused): the weights of ViT-B-16 are not in the local cache",
                          option="pretrained")
    words = cli._in_cli_words(error, command)
    assert "no network" in words and "checkpoint" in words and "teacher_pretrained" in words
    assert "pretrained=PATH" not in words and "--pretrained" not in words and "--teacher-pretrained" not in words
