"""Config files read carefully: every section and key checked, aliases refused, every value range-checked,
and the view options that contradict each other refused naming both."""
import dataclasses
import re
import subprocess
import sys
import textwrap
import typing

import pytest

from milan_lab.config import JOBS, PRESET_DIR, VIEW_CONFLICTS, TrainerConfig, apply_overrides, get_config
from milan_lab.errors import ConfigError
from tests.helpers import ROOT, env

TINY = "milan_vit-tiny-p8_offline"


def _file(tmp_path, text: str, name: str = "mine.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _copied_preset(tmp_path, old: str, new: str) -> str:
    text = (PRESET_DIR / f"{TINY}.yaml").read_text()
    assert old in text
    return _file(tmp_path, text.replace(old, new))


# --- sections and keys --------------------------------------------------------------------------
def test_an_unknown_key_in_a_copied_presets_model_section_is_named(tmp_path):
    path = _copied_preset(tmp_path, "  depth: 6", "  dept: 3")
    for job in JOBS:  # whichever job reads the file
        with pytest.raises(ConfigError, match=r"mine\.yaml: section 'model': unknown config key 'model\.dept' "
                                              r"\(did you mean 'model\.depth'\?\)"):
            get_config(job, TINY, None, path)


def test_the_model_section_keeps_pretraining_fields_for_the_classifier_jobs(tmp_path):
    path = _copied_preset(tmp_path, "  teacher: shipped", "  teacher: shipped\n  mask_ratio: 0.6\n  drop_path: 0.2")
    assert get_config("pretrain", TINY, None, path).model.mask_ratio == 0.6
    assert get_config("finetune", TINY, None, path).model.drop_path == 0.2  # fine-tuning's drop path
    assert get_config("linear", TINY, None, path).model.embed_dim == 192  # no drop path there: left out, not refused
    with pytest.raises(ConfigError, match="section 'model': bad value for 'model.mask_ratio'"):
        get_config("finetune", TINY, None, _copied_preset(tmp_path, "  teacher: shipped", "  mask_ratio: lots"))


@pytest.mark.parametrize("text", ["model:\n  depth: 2\npretrian:\n  epochs: 3\n",  # beside other sections
                                  "pretrian:\n  epochs: 3\n",                        # alone: once read as flat keys
                                  "pretrain:\n  epochs: 3\nfinetuen:\n"])            # empty
def test_a_misspelt_section_is_named_with_the_closest_one(tmp_path, text):
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown section '(pretrian|finetuen)' \(did you mean "
                                          r"'(pretrain|finetune)'\?\)"):
        get_config("pretrain", TINY, None, _file(tmp_path, text))


def test_a_typo_in_another_jobs_section_is_named_too(tmp_path):
    path = _copied_preset(tmp_path, "linear:\n", "linear:\n  momentun: 0.9\n")
    with pytest.raises(ConfigError, match=r"section 'linear': unknown config key 'momentun' \(did you mean 'momentum'"):
        get_config("pretrain", TINY, None, path)
    nested = _file(tmp_path, "pretrain:\n  optim:\n    lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"section 'pretrain': unknown config key 'optim\.lr'"):
        get_config("pretrain", TINY, None, nested)


@pytest.mark.parametrize("text, section, kind", [
    ("pretrain:\n  - epochs: 3\n", "pretrain", "a list"),
    ("model: 3\npretrain:\n  epochs: 3\n", "model", "the number 3"),
    ("model: [depth]\n", "model", "a list"),
    ("finetune: fast\npretrain: {}\n", "finetune", "the text"),
])
def test_a_section_that_is_not_a_mapping_is_one_line(tmp_path, text, section, kind):
    with pytest.raises(ConfigError, match=rf"section '{section}' must be a mapping of options, got {kind}"):
        get_config("pretrain", TINY, None, _file(tmp_path, text))


def test_an_option_outside_the_sections_of_a_sectioned_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'epochs' is outside any section"):
        get_config("pretrain", TINY, None, _file(tmp_path, "epochs: 3\npretrain:\n  batch_size: 32\n"))


def test_flat_files_and_overrides_suggest_the_closest_key(tmp_path):
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown config key 'epoch' \(did you mean 'epochs'\?\)"):
        get_config("pretrain", TINY, None, _file(tmp_path, "epoch: 3\n"))
    for key, close in (("epoch", "epochs"), ("mask_ratoi", "mask_ratio"), ("model.mask_ratoi", "model.mask_ratio"),
                       ("model.dept", "model.depth"), ("layer_decy", "layer_decay")):
        job = "finetune" if key == "layer_decy" else "pretrain"
        with pytest.raises(ConfigError, match=rf"unknown config key '{key}' \(did you mean '{close}'\?\)"):
            get_config(job, None, [f"{key}=3"])
    with pytest.raises(ConfigError, match="'preset' is not an option"):  # it would relabel the run, not load it
        get_config("pretrain", None, ["preset=milan_vit-micro-p8_offline"])


# --- YAML: aliases, size, depth -------------------------------------------------------------------
def _bomb(kind: str) -> list[str]:
    """Nine levels of nine aliases each ("billion laughs"): 9**9 values once expanded, a few lines written."""
    lol = ", ".join(["lol"] * 9) if kind == "list" else ", ".join(f"k{j}: lol" for j in range(9))
    rows = [f"&a [{lol}]" if kind == "list" else f"&a {{{lol}}}"]
    for i in range(8):
        refs = ", ".join([f"*{chr(97 + i)}"] * 9) if kind == "list" else ", ".join(f"k{j}: *{chr(97 + i)}" for j in range(9))
        rows.append(f"&{chr(98 + i)} [{refs}]" if kind == "list" else f"&{chr(98 + i)} {{{refs}}}")
    return rows


@pytest.mark.parametrize("where", ["known key", "nested section", "top level"])
def test_a_billion_laughs_file_is_refused_at_once(tmp_path, where):
    """Each used to run for half a minute and past 3 GB (the bad value printed, or the sections flattened):
    run in a process limited to 1 GB with a timeout."""
    if where == "known key":
        text = f"pretrain:\n  epochs: [{', '.join(_bomb('list'))}]\n"
    else:
        rows = [f"{chr(97 + i)}: {row}" for i, row in enumerate(_bomb("dict"))]
        text = "pretrain:\n" + "".join(f"  {r}\n" for r in rows) if where == "nested section" else "\n".join(rows) + "\n"
    path = _file(tmp_path, text, "bomb.yaml")
    _refused_quickly(f"get_config('pretrain', None, None, {path!r})", r"bomb\.yaml:\d+:\d+: YAML aliases")


def test_a_billion_laughs_override_is_refused_at_once():
    _refused_quickly(f"get_config('pretrain', None, [{'epochs=[' + ', '.join(_bomb('list')) + ']'!r}])",
                     r"bad value for 'epochs': YAML aliases")


def _refused_quickly(call: str, message: str) -> None:
    code = textwrap.dedent(f"""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
        from milan_lab.config import get_config
        from milan_lab.errors import ConfigError
        t = time.perf_counter()
        try:
            {call}
        except ConfigError as e:
            print(f"{{time.perf_counter() - t:.3f}} {{e}}")
        """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    seconds, error = res.stdout.split(" ", 1)
    assert float(seconds) < 0.5 and re.search(message, error), res.stdout


def test_aliases_deep_nesting_huge_and_binary_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"mine\.yaml:3:9: YAML aliases \(\*name\) are not accepted"):
        get_config("pretrain", TINY, None, _file(tmp_path, "pretrain:\n  epochs: &n 3\n  seed: *n\n"))
    with pytest.raises(ConfigError, match=r"mine\.yaml:2:\d+: nested more than 16 levels deep"):
        get_config("pretrain", TINY, None, _file(tmp_path, "pretrain:\n  epochs: " + "[" * 5000 + "]" * 5000 + "\n"))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (5 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: .* more than a config holds"):
        get_config("pretrain", TINY, None, str(big))
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigError, match=r"model\.yaml: not a text \(UTF-8\) file"):
        get_config("pretrain", TINY, None, str(binary))


# --- every value range-checked ---------------------------------------------------------------------
# one out-of-range value per option; options not here are booleans (checked by type) or free text
BAD = {"batch_size": 0, "accum_steps": 0, "clip_grad": 0, "seed": -1, "device": "gpu", "precision": "fp64",
       "output_dir": "", "checkpoint_every": 0, "keep_checkpoints": -1, "log_every": 0, "max_steps": 0,
       "logger": "stdout", "data": "/does/not/exist", "offline_size": 0, "offline_cache_mb": -1,
       "offline_variant": "busy", "num_workers": -2, "epochs": 0, "warmup_epochs": -1, "base_lr": 0, "lr": 0,
       "min_lr": -1, "weight_decay": -1, "beta1": 1, "beta2": -0.5, "min_crop_scale": 0, "cache_views": 0,
       "knn_every": -1, "knn_every_steps": -1, "keep_every": -2, "knn_train_size": 0, "knn_val_size": 0, "num_classes": -1,
       "eval_size": 0, "layer_decay": 0, "mixup": -1, "cutmix": -1, "label_smoothing": 1, "random_erasing": 1.5,
       "momentum": 1, "eval_every": 0}
FREE_TEXT = {"rand_augment", "checkpoint"}  # a timm policy string; a checkpoint path ("" = random init)


@pytest.mark.parametrize("job", list(JOBS))
def test_every_option_of_every_job_is_range_checked(job):
    cls = JOBS[job]
    for f in dataclasses.fields(cls):
        if f.name in ("model", "preset") or f.name in FREE_TEXT:
            continue
        tp = typing.get_type_hints(cls)[f.name]
        if tp is bool:
            with pytest.raises(ConfigError, match=f"bad value for '{f.name}'"):
                get_config(job, None, [f"{f.name}=maybe"])
            continue
        assert f.name in BAD, f"{f.name}: no out-of-range value known for this option"
        with pytest.raises(ConfigError, match=rf"(^|\W){f.name}\W"):
            get_config(job, None, {f.name: BAD[f.name]})
        if float in (tp, *typing.get_args(tp)):  # NaN passes every comparison: refused on its own
            for value in ("nan", "inf"):
                with pytest.raises(ConfigError, match=f"bad value for '{f.name}'"):
                    get_config(job, None, [f"{f.name}={value}"])
    with pytest.raises(ConfigError, match=r"bad value for 'seed': must be in \[0, 2\*\*32\)"):
        get_config(job, None, {"seed": 2**32})
    with pytest.raises(ConfigError, match="bad value for 'epochs'"):
        get_config(job, None, ["epochs=.inf"])  # int(inf) overflows: one line, not a traceback
    assert {f.name for f in dataclasses.fields(TrainerConfig)} <= {f.name for f in dataclasses.fields(cls)}


def test_seed_in_a_config_file_is_range_checked(tmp_path):
    with pytest.raises(ConfigError, match="bad value for 'seed'"):
        get_config("pretrain", TINY, None, _file(tmp_path, "pretrain:\n  seed: -1\n"))


# --- the view options ---------------------------------------------------------------------------
def _conflicts(tmp_path):
    """One configuration per row of VIEW_CONFLICTS: (overrides, option A, option B)."""
    return [
        (["teacher_cache=false", "fixed_views=true", "min_crop_scale=0.5"], "fixed_views", "min_crop_scale"),
        (["teacher_cache=true", "fixed_views=true", "cache_views=4"], "fixed_views", "cache_views"),
        (["teacher_cache=true", "min_crop_scale=0.5"], "teacher_cache", "min_crop_scale"),
        (["teacher_cache=false", "cache_views=4", "min_crop_scale=0.2"], "cache_views", "teacher_cache"),
        (["teacher_cache=true", "cache_views=4", f"data={tmp_path}"], "cache_views", "data"),
    ]


def test_every_pair_of_contradicting_view_options_is_refused_naming_both(tmp_path):
    cases = _conflicts(tmp_path)
    assert [(a, b) for _, a, b in cases] == [(a, b) for a, _, b, _, _ in VIEW_CONFLICTS]  # every row, in order
    for overrides, a, b in cases:
        with pytest.raises(ConfigError, match=rf"^{a}=\S+ and {b}=\S+ contradict each other: "):
            get_config("pretrain", TINY, overrides)
    # and the combinations that agree are accepted
    assert get_config("pretrain", TINY, ["fixed_views=true"]).teacher_cache  # the cache's views are fixed views
    assert get_config("pretrain", TINY, ["teacher_cache=false", "fixed_views=true"]).min_crop_scale == 1
    cfg = get_config("pretrain", TINY, ["cache_views=4", "min_crop_scale=0.2"])
    assert cfg.cache_views == 4 and cfg.min_crop_scale == 0.2  # K cached random crops
    assert get_config("pretrain", TINY, ["teacher_cache=false", "min_crop_scale=0.2"]).min_crop_scale == 0.2
    assert apply_overrides(get_config("pretrain", TINY), {"min_crop_scale": 0.5}).min_crop_scale == 0.5  # checked by validate


def test_default_output_folders_are_under_outputs():
    from milan_lab.jobs.teacher import TeacherTrainConfig
    assert {job: get_config(job).output_dir for job in JOBS} == {
        "pretrain": "outputs/pretrain", "finetune": "outputs/finetune", "linear": "outputs/linear"}
    assert TeacherTrainConfig().output_dir == "outputs/teacher"
    assert get_config("pretrain", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k").output_dir.startswith("outputs/")
