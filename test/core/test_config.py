"""The typed config: defaults, presets, overrides and the errors users see."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from fg_depth_core.config import (
    LOSS_PRESETS,
    BagConfig,
    Config,
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    SgbmConfig,
    TeacherConfig,
    dump_config,
    load_config,
)
from fg_depth_core.spec import Spec, declared, spec_of

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_method_md():
    cfg = load_config(None)
    assert cfg.loss.ssim_alpha == 0.85
    assert cfg.loss.prior_mask_max_depth == 80.0
    assert (cfg.loss.lambda_dr, cfg.loss.lambda_fp) == (1.0, 1.0)
    assert cfg.loss.dr_penalty == "log_l1"
    assert cfg.loss.smoothness_weight == 1e-3
    assert cfg.augment.graft_ratios == [0.2, 0.4, 0.6, 0.8]
    assert cfg.teacher.method == "sgbm"
    assert cfg.model.num_scales == 4


@pytest.mark.parametrize("preset", sorted(LOSS_PRESETS))
def test_preset_expands_and_explicit_keys_override(tmp_path, preset):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"loss": {"preset": preset, "lambda_fp": 0.5}}))
    cfg = load_config(path)
    for key, value in LOSS_PRESETS[preset].items():
        assert getattr(cfg.loss, key) == value
    assert cfg.loss.lambda_fp == 0.5


def test_baseline_preset_differs_from_full():
    base, full = LossConfig.from_preset("baseline"), LossConfig.from_preset("fgdepth")
    assert (base.photometric_mask, base.use_dr, base.use_fp) == ("auto", False, False)
    assert (full.photometric_mask, full.use_dr, full.use_fp) == ("flow_prior", True, True)


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["model.encoder=resnet50", "loss.dr_penalty=berhu", "augment.flip_prob=0.25"])
    path = tmp_path / "dump.yaml"
    dump_config(cfg, path)
    again = load_config(path)
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)
    assert again.model.encoder == "resnet50" and again.augment.flip_prob == 0.25


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("loss.lamda_dr=1", "loss.lamda_dr: unknown key"),
        ("model.encoder=vgg", "model.encoder: expected one of"),
        ("model.max_depth=0.05", "model.max_depth: expected > min_depth"),
        (
            "teacher.sgbm.num_disparities=100",
            "teacher.sgbm.num_disparities: expected a positive multiple of 16",
        ),
        ("loss.use_dr=yes please", "loss.use_dr: expected true or false"),
        ("augment.graft_ratios=[0.5, 1.5]", "augment.graft_ratios"),
        ("model.num_scales=2.5", "model.num_scales: expected an integer"),
        ("loss=3", "loss: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(tmp_path, override, fragment):
    path = tmp_path / "mine.yaml"
    path.write_text("{}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert fragment in str(err.value)
    assert "mine.yaml" in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(top)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(None, ["model.encoder"])
    with pytest.raises(ConfigError, match="is not a section"):
        load_config(None, ["model.encoder=resnet18", "model.encoder.x=1"])


def test_config_is_a_single_tree():
    names = [f.name for f in dataclasses.fields(Config)]
    assert names == ["model", "teacher", "loss", "augment", "data", "train", "eval", "inference"]


def test_shipped_default_yaml_equals_the_code_defaults():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "config" / "default.yaml"
    assert dataclasses.asdict(load_config(path)) == dataclasses.asdict(Config())


def test_exponent_floats_without_a_dot_are_numbers():
    # YAML 1.1 reads "1e-4" as a string; a user writing --set train.learning_rate=1e-4 means the number.
    cfg = load_config(None, ["train.learning_rate=1e-4", "loss.smoothness_weight=2E-3"])
    assert cfg.train.learning_rate == 1e-4 and cfg.loss.smoothness_weight == 2e-3
    with pytest.raises(ConfigError, match="train.learning_rate: expected a number"):
        load_config(None, ["train.learning_rate=fast"])


# ------------------------------------------------------------------------------------------ declared settings


def _leaves(obj, prefix=""):
    """(dotted key, dataclass field, Spec) of every key of a config tree, depth first."""
    out = []
    for f in dataclasses.fields(obj):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        out += _leaves(value, key) if dataclasses.is_dataclass(value) else [(key, f, spec_of(f))]
    return out


def test_every_key_declares_its_help_and_its_default_meets_it():
    leaves = _leaves(Config())
    assert len(leaves) > 50
    undeclared = [key for key, _, spec in leaves if spec is None or not spec.help.strip()]
    assert not undeclared, f"keys without setting(default, help, ...): {undeclared}"
    assert Config().validate() is not None  # every default meets its own declaration and the rules


def _breaking_value(spec: Spec, default):
    """A value of the default's type that breaks the Spec's declared constraints (None: none declared)."""
    if spec.each:
        return [] if spec.min_items else None
    if spec.choices:
        return "no-such-choice"
    if spec.pattern:
        return ""
    if spec.minimum is not None:
        return type(default)(spec.minimum - 1)
    if spec.maximum is not None:
        return type(default)(spec.maximum + 1)
    return None


def test_validation_checks_every_declared_constraint_in_every_section():
    """The generic walk reaches each key of each (nested) section: breaking any key's declared constraint is
    refused with the key's dotted name and the Spec's own words."""
    checked = 0
    for key, _, spec in _leaves(Config()):
        default = load_config(None).to_dict()
        for part in key.split("."):
            default = default[part]
        bad = _breaking_value(spec, default)
        if bad is None:
            continue
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"{key}={yaml.safe_dump(bad, default_flow_style=True).strip()}"])
        assert f"defaults: {key}: expected {spec.expected()}, got " in str(err.value)
        checked += 1
    assert checked > 40


def test_sections_validate_on_their_own_with_the_given_prefix():
    with pytest.raises(ConfigError) as err:
        SgbmConfig(num_disparities=100).validate("x")
    assert str(err.value) == "x.num_disparities: expected a positive multiple of 16, got 100"
    with pytest.raises(ConfigError, match=r"^teacher\.sgbm\.block_size: expected an odd number that is >= 1"):
        TeacherConfig(sgbm=SgbmConfig(block_size=4)).validate("teacher")
    with pytest.raises(ConfigError, match=r"^data\.bag\.left_topic: the 'bag' dataset needs"):
        DataConfig(dataset="bag").validate("data")
    assert DataConfig(dataset="bag", bag=BagConfig(left_topic="/l", right_topic="/r")).validate("data")


def test_rules_across_keys_are_declared_and_their_errors_quote_the_declaration():
    rules = {name: spec.rule for name, spec in declared(ModelConfig)}
    assert rules["max_depth"] == "> min_depth"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.init_depth=200"])
    assert str(err.value) == (
        f"defaults: model.init_depth: expected {rules['init_depth']}, got 200.0 "
        "(min_depth = 0.1, max_depth = 100.0)"
    )
    assert load_config(None, ["model.init_depth=0"]).model.init_depth == 0
    with pytest.raises(ConfigError, match="model.init_depth: expected 0 or a depth in"):
        load_config(None, ["model.init_depth=0.05"])
    with pytest.raises(ConfigError, match=r"eval.max_depth: expected > min_depth, got 0.5 \(min_depth = 1.0"):
        load_config(None, ["eval.min_depth=1", "eval.max_depth=0.5"])
    with pytest.raises(ConfigError, match="model.max_depth: expected > min_depth"):
        ModelConfig(min_depth=5.0, max_depth=5.0).validate("model")


# ------------------------------------------------------------------ a preset and its flags cannot disagree


def test_a_preset_on_the_command_line_expands_over_the_files_loss_keys():
    # Issue 14: default.yaml lists photometric_mask, use_dr and use_fp explicitly; --set loss.preset=baseline
    # used to leave them in force and train the full FG-Depth loss under the name "baseline".
    cfg = load_config(ROOT / "config" / "default.yaml", ["loss.preset=baseline"])
    assert (cfg.loss.preset, cfg.loss.photometric_mask, cfg.loss.use_dr, cfg.loss.use_fp) == (
        "baseline",
        "auto",
        False,
        False,
    )
    # Keys the preset does not set stay as the file has them; an override of one of its keys after it wins
    # only when it agrees with it (else the contradiction is refused, below).
    cfg = load_config(ROOT / "config" / "default.yaml", ["loss.preset=dr", "loss.lambda_dr=0.5"])
    assert (cfg.loss.use_dr, cfg.loss.use_fp, cfg.loss.lambda_dr) == (True, False, 0.5)


@pytest.mark.parametrize(
    "where, overrides",
    [
        ({"loss": {"preset": "baseline", "use_dr": True}}, []),
        ({"loss": {"preset": "fgdepth"}}, ["loss.photometric_mask=auto"]),
        ({}, ["loss.preset=baseline", "loss.use_fp=true"]),
    ],
)
def test_explicit_keys_that_contradict_the_preset_are_refused_by_name(tmp_path, where, overrides):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(where))
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    message = str(err.value)
    assert str(path) in message and "loss.preset" in message and "custom" in message
    key = next(k for k in ("use_dr", "photometric_mask", "use_fp") if k in message)
    assert f"{key}:" in message and "the preset's:" in message


def test_custom_takes_the_keys_as_written_and_code_built_sections_are_checked_too():
    cfg = load_config(ROOT / "config" / "default.yaml", ["loss.preset=custom", "loss.use_fp=false"])
    assert (cfg.loss.photometric_mask, cfg.loss.use_dr, cfg.loss.use_fp) == ("flow_prior", True, False)
    with pytest.raises(ConfigError, match="loss.preset: preset 'baseline' sets photometric_mask, use_dr"):
        LossConfig(preset="baseline").validate("loss")


def test_a_stored_contradicting_section_is_read_as_custom_with_a_warning():
    from fg_depth_core.config import config_from_dict

    stored = Config().to_dict()
    stored["loss"].update(preset="baseline")  # as old versions saved `--set loss.preset=baseline`
    with pytest.warns(UserWarning, match="read as preset custom"):
        cfg = config_from_dict(stored, "old.pt", preset_conflict="custom")
    assert (cfg.loss.preset, cfg.loss.use_dr, cfg.loss.use_fp) == ("custom", True, True)
    with pytest.raises(ConfigError, match="old.pt: loss.preset 'baseline' sets"):
        config_from_dict(stored, "old.pt")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("loss.dr_units=inverse", "loss.dr_units: expected \"metres\" when dr_penalty is inv_l1"),
        ("loss.dr_units=feet", "loss.dr_units: expected one of"),
        ("loss.lambda_ph=-1", "loss.lambda_ph: expected >= 0"),
        ("loss.delta_reading=both", "loss.delta_reading: expected one of"),
        ("loss.auto_mask_average=some", "loss.auto_mask_average: expected one of"),
        ("teacher.resolution=half", "teacher.resolution: expected one of"),
        ("teacher.dis.preset=slow", "teacher.dis.preset: expected one of"),
    ],
)
def test_the_issue_14_options_are_declared_and_checked(override, fragment):
    overrides = [override] + (["loss.dr_penalty=inv_l1"] if "inverse" in override else [])
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(None, overrides)
