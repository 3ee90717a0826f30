"""The registries of samplers, decoders and targets (milan_lab.registry): every consumer reads them.

A sampler and a target registered here, in test code, with no file of the package changed for them,
are accepted by the config, listed by --help, offered by the app and run by pretraining; the
built-in choices are tested by parametrising over the registries (as timm's tests are over
``list_models()``)."""
import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch

from milan_lab.config import PretrainConfig, describe, get_config
from milan_lab.errors import ConfigError
from milan_lab.models.decoders import DECODERS
from milan_lab.models.losses import TARGETS, patchify, register_target
from milan_lab.models.masking import SAMPLERS, from_order, len_keep, register_sampler, sample_mask
from milan_lab.models.milan import MILAN
from milan_lab.registry import BUILTIN_DECODERS, BUILTIN_SAMPLERS, BUILTIN_TARGETS, Registry, builtin
from tests.conftest import replace
from tests.helpers import tiny_overrides

PRESET = "milan_vit-micro-p8_offline"
calls = {"checkerboard": 0, "l1-pixels": 0}


def checkerboard(n, num_patches, mask_ratio, importance, device, generator):
    """Teacher-free: the patches of one colour of a checkerboard first (kept at ratio 0.5), then the others."""
    calls["checkerboard"] += 1
    side = int(num_patches ** 0.5)
    cells = torch.arange(num_patches, device=device)
    order = torch.argsort((cells // side + cells % side) % 2, stable=True)
    return from_order(order.repeat(n, 1), len_keep(num_patches, mask_ratio))


def l1_pixels(cfg, images, pred, features, mask):
    """Teacher-free: mean absolute error of the removed patches' pixels."""
    calls["l1-pixels"] += 1
    per_patch = (pred[:, 1:].float() - patchify(images, cfg.patch_size)).abs().mean(-1)
    return (per_patch * mask).sum() / mask.sum()


@pytest.fixture
def toy_choices():
    """The toy sampler and target, registered for one test and removed after it."""
    register_sampler("checkerboard", needs_teacher=False, help="every other patch, as on a chessboard")(checkerboard)
    register_target("l1-pixels", needs_teacher=False, out_dim=lambda cfg: cfg.patch_size ** 2 * 3, predicts="pixels",
                    help="the removed patches' pixels, mean absolute error")(l1_pixels)
    calls.update(dict.fromkeys(calls, 0))
    yield
    SAMPLERS.unregister("checkerboard")
    TARGETS.unregister("l1-pixels")


# -- a toy sampler and target, registered in test code ------------------------------------------------------
def test_config_accepts_registered_choices_and_reads_their_flags(toy_choices):
    cfg = get_config("pretrain", PRESET, ["sampler=checkerboard", "target=l1-pixels"])
    assert (cfg.model.sampler, cfg.model.target) == ("checkerboard", "l1-pixels")
    assert not cfg.model.needs_teacher  # neither reads the teacher: no CLIP is loaded for this run
    assert dataclasses.replace(cfg.model, target="clip").needs_teacher
    assert dataclasses.replace(cfg.model, sampler="semantic").needs_teacher
    rows = {key: kind for key, kind, _ in describe(PretrainConfig)}  # what `milan-lab pretrain --help` prints
    assert "checkerboard" in rows["model.sampler"] and "l1-pixels" in rows["model.target"]
    assert "prompting" in rows["model.decoder"]


def test_unregistered_choice_is_refused_naming_the_key_after_removal(toy_choices):
    SAMPLERS.unregister("checkerboard")
    try:
        with pytest.raises(ConfigError, match="'sampler'.*checkerboar"):
            get_config("pretrain", PRESET, ["sampler=checkerboard"])
    finally:
        register_sampler("checkerboard", needs_teacher=False, help="every other patch")(checkerboard)


def test_app_offers_registered_sampler_and_runs_it(toy_choices, tiny_teacher):
    import gradio as gr

    from milan_lab.app import build_app
    from milan_lab.viz.panels import Explorer
    explorer = Explorer(tiny_teacher)
    demo = build_app(explorer)
    dropdowns = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and "sampler" in str(b.label)]
    assert len(dropdowns) >= 2
    for dropdown in dropdowns:
        offered = [value for _, value in dropdown.choices]
        assert offered[:len(SAMPLERS)] == list(SAMPLERS) and "checkerboard" in offered
    about = " ".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert "every other patch, as on a chessboard" in about  # its help line in the About tab
    image = (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()
    shown = explorer.masks(image, "checkerboard", 0.5, 0)  # the Masks tab's handler
    grid = shown["mask"].reshape(4, 4)
    assert calls["checkerboard"] == 1 and (grid[0, 0], grid[0, 1], grid[1, 0]) == (0, 1, 1)


def test_pretraining_runs_registered_sampler_and_target_without_a_teacher(toy_choices, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    # the default teacher (ViT-B-16, openai) cannot be fetched offline: the run must not try
    cfg = get_config("pretrain", PRESET, tiny_overrides("ViT-B-16", tmp_path / "run", sampler="checkerboard",
                                                        target="l1-pixels", teacher_pretrained="openai",
                                                        teacher_cache=False, max_steps=3, knn_every=0))
    summary = pretrain(cfg)
    assert summary["steps"] == 3 and summary["final_loss"] > 0
    assert calls["checkerboard"] >= 3 and calls["l1-pixels"] >= 3


# The toy probe of the same check (a probe registered in test code, run by the probe suite) lives beside the
# suite: tests/evaluation/test_probe_suite.py, which registers one with milan_lab.evaluation.suite.register_probe.


# -- the built-in choices, parametrised over the registries --------------------------------------------------
def test_display_order_and_one_line_help():
    assert list(SAMPLERS)[:2] == ["semantic", "random"] and list(DECODERS)[0] == "prompting"
    for registry in (SAMPLERS, DECODERS, TARGETS):
        for name, entry in registry.items():
            assert entry.name == name and entry.help and "\n" not in entry.help


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sampler_guard_reads_its_flag(sampler):
    entry = SAMPLERS[sampler]
    if entry.needs_teacher:
        with pytest.raises(ValueError, match="needs the teacher"):
            sample_mask(sampler, 0.5, 2, 16)
    else:  # a teacher-free sampler runs without the teacher's attention
        assert sample_mask(sampler, 0.5, 2, 16).mask.shape == (2, 16)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_every_decoder_and_target_trains_a_step(decoder, target, tiny_cfg, tiny_teacher):
    cfg = replace(tiny_cfg, decoder=decoder, target=target, sampler="random")
    model = MILAN(cfg, tiny_teacher if cfg.needs_teacher else None)
    out = model.forward_train(torch.randn(2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    assert out.pred.shape == (2, 17, TARGETS[target].out_dim(cfg)) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.encoder.cls_token.grad is not None


def test_registry_refuses_ambiguous_registrations():
    reg = Registry("thing", flags=("needs_teacher",))
    reg.register("a", help="one", needs_teacher=False)(len)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", help="again", needs_teacher=False)(len)
    with pytest.raises(TypeError, match="needs_teacher"):
        reg.register("b", help="no flag")
    with pytest.raises(ConfigError, match="'thing'.*'aa'.*did you mean 'a'"):
        reg.lookup("aa", "thing")
    assert list(reg) == ["a"] and reg["a"]([1, 2]) == 2 and reg["a"].needs_teacher is False


# -- reading a registry costs nothing: the built-ins are declared in milan_lab.registry -----------------------
def test_config_check_and_help_read_the_registries_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        from milan_lab.config import PretrainConfig, describe, get_config
        from milan_lab.errors import ConfigError
        cfg = get_config("pretrain", "milan_vit-tiny-p8_offline", ["sampler=random", "target=pixels", "decoder=mae"])
        assert not cfg.model.needs_teacher
        rows = {key: kind for key, kind, _ in describe(PretrainConfig)}
        assert "semantic" in rows["model.sampler"] and "pixels" in rows["model.target"], rows
        try:
            get_config("pretrain", "milan_vit-tiny-p8_offline", ["sampler=semantc"])
        except ConfigError as e:
            assert "'sampler'" in str(e) and "semantic" in str(e), e
        else:
            raise AssertionError("a typo'd sampler was accepted")
        print(sorted(m for m in ("torch", "timm", "open_clip", "milan_lab.models") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # none of them imported by a config check, --help's table or a typo's error


def test_builtins_are_declared_in_display_order_and_bound_to_their_home_modules_functions():
    assert [e.name for e in BUILTIN_SAMPLERS] == list(SAMPLERS)[:len(BUILTIN_SAMPLERS)]
    for registry, declared in ((SAMPLERS, BUILTIN_SAMPLERS), (DECODERS, BUILTIN_DECODERS), (TARGETS, BUILTIN_TARGETS)):
        assert list(registry) == [e.name for e in declared]  # the home modules register nothing undeclared
        for entry in declared:
            assert f"{entry.fn.__module__}:{entry.fn.__qualname__}" == entry.impl  # the declaration names the code
    assert {name: TARGETS[name].predicts for name in TARGETS} == {"clip": "features", "pixels": "pixels"}


@pytest.fixture
def toy_home(tmp_path, monkeypatch):
    """A registry with a declared built-in and a home module (a file of tmp_path) that binds it."""
    (tmp_path / "toy_registry_home.py").write_text(textwrap.dedent(f"""
        import sys

        @sys.modules[{__name__!r}].TOY.bind("a")
        def a():
            return "built-in a"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = Registry("thing", "toy_registry_home", builtins=(builtin("a", "toy_registry_home:a", help="the built-in one"),))
    monkeypatch.setattr(sys.modules[__name__], "TOY", toy, raising=False)
    yield toy
    sys.modules.pop("toy_registry_home", None)


def test_declared_names_are_read_without_the_home_and_a_user_registration_imports_it_first(toy_home):
    assert list(toy_home) == ["a"] and toy_home.lookup("a").help == "the built-in one"
    with pytest.raises(ConfigError, match="'thing'.*'b'"):
        toy_home.lookup("b", "thing")
    assert "toy_registry_home" not in sys.modules  # names, helps and a miss: nothing imported
    with pytest.raises(ValueError, match="'a' is already registered"):
        toy_home.register("a", help="a user's a")(len)  # refused at the user's call
    assert "toy_registry_home" in sys.modules and toy_home["a"]() == "built-in a"  # bound by its home
    toy_home.register("b", help="a user's b")(len)
    assert list(toy_home) == ["a", "b"] and toy_home["b"]([1, 2]) == 2


def test_bind_refuses_a_function_the_declaration_does_not_name(toy_home):
    with pytest.raises(ValueError, match="toy_registry_home:a"):
        toy_home.bind("a")(len)
    with pytest.raises(ValueError, match="'c' is not a declared built-in"):
        toy_home.bind("c")


def test_a_builtin_name_is_refused_at_the_users_register_call():
    with pytest.raises(ValueError, match="'semantic' is already registered"):
        register_sampler("semantic", needs_teacher=False, help="a user's semantic")(checkerboard)
    assert SAMPLERS["semantic"].needs_teacher and "semantic" in list(SAMPLERS)
    with pytest.raises(ValueError, match="predicts"):
        register_target("l1-wrong", needs_teacher=False, out_dim=len, predicts="tokens", help="x")


def test_a_probe_name_registered_twice_is_refused():
    from milan_lab.evaluation import suite
    with pytest.raises(ValueError, match="'knn_cls' is already registered"):
        suite.register_probe("knn_cls", "a second knn_cls")(len)
    assert suite.PROBES["knn_cls"].fn is not len and suite.PROBES["knn_cls"].metrics == ("knn_cls",)


def test_a_registered_pixel_target_takes_the_pixel_path_in_the_panels(toy_choices, tiny_cfg, tiny_teacher):
    from milan_lab.viz.panels import Explorer
    model = MILAN(replace(tiny_cfg, target="l1-pixels", sampler="random"), None)
    image = (torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()
    out = Explorer(tiny_teacher, model).reconstruction(image, "random", 0.5, 0)
    assert out["cosine"] is None and out["pixels"].shape[-1] == 3  # reconstructed pixels, not features' cosines
