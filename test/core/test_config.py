"""The typed config: defaults, presets, overrides and the errors users see."""

import dataclasses

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
