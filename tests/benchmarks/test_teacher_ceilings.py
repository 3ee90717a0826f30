"""benchmarks/teacher_ceilings.py: the shipped teachers' zero-shot per scene kind and their own probe scores."""
import json
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import teacher_ceilings  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


@pytest.mark.parametrize("argv, names", [
    (["--teachers", "offline-nothing"], ["offline-nothing", "offline-shape", "offline-noshape"]),
    (["--train", "0"], ["--train"]),
    (["--probe-variants", "middle"], ["--probe-variants", "middle"]),
])
def test_bad_options_are_one_line_before_any_work(argv, names, capsys):
    with pytest.raises(SystemExit) as e:
        teacher_ceilings.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("teacher_ceilings: error:")
    assert all(n in err[0] for n in names), err[0]


def test_an_alias_names_the_teacher_it_stands_for():
    assert teacher_ceilings.shipped_teacher("shipped") == "offline-shape"


def test_the_teachers_probed_features_are_its_targets():
    """The class token the probes read is the teacher's image embedding (before normalisation), and every token
    is what MILAN's student regresses."""
    from milan_lab.evaluation.teacher import TeacherTokens
    from milan_lab.factory.teachers import load_teacher
    teacher = load_teacher("offline-noshape")
    x = torch.randn(3, 3, 64, 64)
    tokens = TeacherTokens(teacher).forward_features(x)
    assert tokens.shape == (3, 65, teacher.embed_dim)
    assert torch.allclose(tokens, teacher(x)[0])
    assert torch.allclose(F.normalize(tokens[:, 0], dim=-1), teacher.encode_image(x), atol=1e-5)


def test_a_small_run_writes_a_record_and_its_table(tmp_path, capsys):
    rec = tmp_path / "teacher_ceilings.json"
    assert teacher_ceilings.main(["--teachers", "offline-shape", "--zero-shot-variants", "mid", "--train", "16",
                                  "--val", "16", "--zero-shot", "8", "--dense-train", "8", "--dense-val", "4",
                                  "--dense-steps", "2", "--probe-variants", "dense", "--record", str(rec)]) == 0
    record = json.loads(rec.read_text())
    assert record["kind"] == "teacher-ceilings" and record["commit"] and record["seeds"] == [0]
    r = record["result"]
    shape = r["teachers"]["offline-shape"]
    assert list(shape["zero_shot"]) == ["mid"] and 0 <= shape["zero_shot"]["mid"]["shape"] <= 1
    for probes in (shape["probes"]["dense"], r["floor"]["random init"]["probes"]["dense"]):
        assert set(probes) == set(teacher_ceilings.PROBES)
        assert all(0 <= v["mean"] <= 1 for v in probes.values()) and probes["knn_cls"]["n"] == 16
    table = tables.TABLES["teacher-ceilings"](tmp_path)
    assert "`offline-shape`" in table and "random init" in table and "zero-shot shape, mid %" in table
    assert table.split("\n\n")[0] in capsys.readouterr().out  # the script prints the table the docs show
