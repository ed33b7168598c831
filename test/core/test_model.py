"""DepthNet: shapes, depth mapping, offline weights, input checks, differentiability, export wrapper."""

from __future__ import annotations

import socket
import urllib.request

import pytest
import torch
import torchvision

from fg_depth_core.config import ModelConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.model import (
    DepthNetExport,
    ModelError,
    build_depthnet,
    depth_to_sigmoid,
    sigmoid_to_depth,
)

H, W = 64, 96


def _seeded_resnet_state(name: str, seed: int) -> dict:
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(weights=None)
    # Non-default BN statistics so that buffers are checked too, not only parameters.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1.0, 1.0)
                module.running_var.uniform_(0.5, 2.0)
    return net.state_dict()


def _assert_encoder_equals(net, state: dict) -> None:
    enc = net.encoder.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert set(enc) == set(expected)
    for key, value in expected.items():
        assert torch.equal(enc[key], value), key


@pytest.fixture(scope="module")
def r18_state() -> dict:
    """A torchvision resnet18 state dict made with a fixed seed (never modified by the tests)."""
    return _seeded_resnet_state("resnet18", seed=7)


@pytest.fixture(scope="module")
def r18_net():
    """A default DepthNet in eval mode, for tests that only run it."""
    torch.manual_seed(0)
    return build_depthnet(ModelConfig()).eval()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


# ----------------------------------------------------------------------------------------------- mapping


def test_sigmoid_to_depth_endpoints_and_hand_values():
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    depth = sigmoid_to_depth(s, 0.1, 100.0)
    # disp = 0.01 + (10 - 0.01) * s: 0.01, 5.005, 10.0 -> depth 100, 1/5.005, 0.1
    expected = torch.tensor([100.0, 1.0 / 5.005, 0.1], dtype=torch.float64)
    torch.testing.assert_close(depth, expected, rtol=1e-12, atol=0.0)
    # Another range: min 2, max 50 -> disp at s=0.25 is 0.02 + 0.48 * 0.25 = 0.14
    torch.testing.assert_close(
        sigmoid_to_depth(torch.tensor([0.25], dtype=torch.float64), 2.0, 50.0),
        torch.tensor([1.0 / 0.14], dtype=torch.float64),
    )


def test_sigmoid_to_depth_is_strictly_decreasing_and_inverted():
    s = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    depth = sigmoid_to_depth(s, 0.5, 80.0)
    assert torch.all(depth[1:] < depth[:-1])
    assert depth.min() >= 0.5 - 1e-12 and depth.max() <= 80.0 + 1e-12
    torch.testing.assert_close(depth_to_sigmoid(depth, 0.5, 80.0), s)


# ----------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("encoder,num_scales", [("resnet18", 4), ("resnet34", 2), ("resnet50", 4)])
def test_output_shapes_and_range(encoder, num_scales):
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, min_depth=0.5, max_depth=20.0, num_scales=num_scales)
    net = build_depthnet(cfg).eval()
    image = torch.rand(2, 3, H, W)
    with torch.no_grad():
        depths = net(image)
    assert [tuple(d.shape) for d in depths] == [(2, 1, H >> s, W >> s) for s in range(num_scales)]
    for d in depths:
        assert torch.isfinite(d).all()
        assert d.min() >= 0.5 and d.max() <= 20.0


def test_heads_saturate_at_the_configured_depth_range():
    cfg = ModelConfig(encoder="resnet18", min_depth=0.25, max_depth=40.0, num_scales=3)
    net = build_depthnet(cfg).eval()
    image = torch.rand(1, 3, 64, 128)
    for bias, expected in ((60.0, 0.25), (-60.0, 40.0)):
        with torch.no_grad():
            for head in net.decoder.heads:
                head.conv.weight.zero_()
                head.conv.bias.fill_(bias)
            depths = net(image)
        for d in depths:
            torch.testing.assert_close(d, torch.full_like(d, expected))


def test_imagenet_normalisation_happens_inside(r18_net):
    net = r18_net
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(net.normalize(mean.expand(1, 3, 2, 2)), torch.zeros(1, 3, 2, 2))
    torch.testing.assert_close(net.normalize((mean + std).expand(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))
    # The constants are not learnt and not stored in checkpoints.
    assert not any(k.startswith("normalize.") for k in net.state_dict())


@pytest.mark.parametrize(
    "shape,needle", [((1, 3, 64, 90), "64x90"), ((1, 3, 48, 96), "48x96"), ((1, 3, 32, 128), "32x128")]
)
def test_bad_input_size_is_a_clear_error(r18_net, shape, needle):
    net = r18_net
    with pytest.raises(ModelError) as err:
        net(torch.rand(*shape))
    assert "multiples of 32 and at least 64" in str(err.value) and needle in str(err.value)
    with pytest.raises(ModelError, match="multiples of 32"):
        net.predict(torch.rand(*shape))


def test_bad_channel_count_is_a_clear_error(r18_net):
    with pytest.raises(ModelError, match=r"\(B,3,H,W\).*\(1, 1, 64, 64\)"):
        r18_net(torch.rand(1, 1, 64, 64))


def test_gradient_step_lowers_depth_error():
    torch.manual_seed(0)
    net = build_depthnet(ModelConfig(encoder="resnet18", min_depth=0.1, max_depth=100.0)).train()
    image = torch.rand(2, 3, 64, 64)
    # Initial depths are ~0.2 m (sigmoid ~0.5); a nearby target keeps the depth MSE well conditioned.
    target = 1.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def loss_fn():
        return sum(((d - target) ** 2).mean() for d in net(image))

    first = loss_fn()
    opt.zero_grad()
    first.backward()
    # Gradient reaches both ends of the graph: the first encoder conv and every head.
    assert net.encoder.conv1.weight.grad.abs().sum() > 0
    assert all(h.conv.weight.grad.abs().sum() > 0 for h in net.decoder.heads)
    opt.step()
    with torch.no_grad():
        after_one = loss_fn()
    assert after_one < first.item()
    for _ in range(2):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = loss_fn()
    assert last < 0.8 * first.item()


def test_export_wrapper_returns_scale_zero_only():
    torch.manual_seed(0)
    net = build_depthnet(ModelConfig(num_scales=4)).eval()
    image = torch.rand(2, 3, H, W)
    with torch.no_grad():
        full = net(image)[0]
        exported = DepthNetExport(net)(image)
    assert isinstance(exported, torch.Tensor)
    assert exported.shape == (2, 1, H, W)
    torch.testing.assert_close(exported, full, rtol=0.0, atol=0.0)
    # The wrapper takes the net's mode, so an exporter restoring the wrapper's mode keeps BatchNorm in eval.
    wrapper = DepthNetExport(net)
    wrapper.train(wrapper.training)
    assert not net.training and not net.encoder.bn1.training


# ----------------------------------------------------------------------------------------------- weights


def test_none_weights_never_touch_the_network(no_network):
    torch.manual_seed(0)
    net = build_depthnet(ModelConfig(encoder="resnet18", encoder_weights="none")).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64))[0].shape == (1, 1, 64, 64)


def test_imagenet_without_cache_names_the_missing_file(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError) as err:
        build_depthnet(ModelConfig(encoder="resnet18", encoder_weights="imagenet"))
    message = str(err.value)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in message
    assert "never downloads" in message and "encoder_weights" in message
    assert isinstance(err.value, FgDepthError)


def test_imagenet_from_cache_is_loaded(no_network, monkeypatch, tmp_path, r18_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = r18_state
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    net = build_depthnet(ModelConfig(encoder="resnet18", encoder_weights="imagenet"))
    _assert_encoder_equals(net, state)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_module"])
def test_weights_from_file(no_network, tmp_path, wrap, r18_state):
    state = r18_state
    if wrap == "plain":
        payload = state
    elif wrap == "state_dict":
        payload = {"state_dict": state, "epoch": 3}
    else:
        payload = {"model": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "encoder.pth"
    torch.save(payload, path)
    torch.manual_seed(123)
    net = build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))
    _assert_encoder_equals(net, state)
    # load_weights=False (restoring a full checkpoint next) keeps the random init.
    torch.manual_seed(123)
    fresh = build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)), load_weights=False)
    assert not torch.equal(fresh.encoder.conv1.weight, state["conv1.weight"])


def test_weights_without_num_batches_tracked_are_accepted(tmp_path, r18_state):
    state = r18_state
    stripped = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(stripped, path)
    net = build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))
    torch.testing.assert_close(net.encoder.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_corrupt_weights_file_names_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(ModelError, match="broken.pth"):
        build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))


def test_missing_weights_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(ModelError, match="not found.*nowhere.pth"):
        build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))


def test_weights_of_another_encoder_are_rejected(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(_seeded_resnet_state("resnet50", seed=1), path)
    with pytest.raises(ModelError) as err:
        build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))
    assert "r50.pth" in str(err.value) and "unexpected" in str(err.value)


def test_weights_with_wrong_shapes_are_rejected(tmp_path, r18_state):
    state = {**r18_state, "conv1.weight": torch.zeros(32, 3, 7, 7)}
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"shape.pth.*conv1.weight.*\(32, 3, 7, 7\).*\(64, 3, 7, 7\)"):
        build_depthnet(ModelConfig(encoder="resnet18", encoder_weights=str(path)))


@pytest.mark.parametrize("init_depth", [5.0, 20.0])
def test_untrained_net_starts_near_init_depth(init_depth):
    torch.manual_seed(0)
    net = build_depthnet(ModelConfig(init_depth=init_depth)).eval()
    with torch.no_grad():
        depths = net(torch.rand(1, 3, 64, 96))
    for d in depths:
        median = float(d.median())
        assert init_depth / 1.5 < median < init_depth * 1.5, (init_depth, median)


def test_zero_init_depth_keeps_zero_bias():
    net = build_depthnet(ModelConfig(init_depth=0.0))
    with torch.no_grad():
        median = float(net.eval()(torch.rand(1, 3, 64, 96))[0].median())
    assert median < 1.0  # a zero bias starts near 2 * min_depth (0.2 m)


def test_depth_keeps_float32_precision_under_bfloat16_autocast():
    # Issue 14: under autocast the heads, sigmoid and depth mapping used to run in bfloat16, so a 640x192
    # forward gave a handful of distinct depths instead of tens of thousands.
    torch.manual_seed(0)
    net = build_depthnet(ModelConfig()).eval()
    image = torch.rand(1, 3, 192, 640)
    with torch.no_grad():
        full = net(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(image)
            predicted = net.predict(image)
    for f, m in zip(full, mixed):
        assert m.dtype == torch.float32
        distinct_full, distinct_mixed = f.unique().numel(), m.unique().numel()
        assert distinct_mixed * 2 >= distinct_full, (distinct_mixed, distinct_full)
    assert predicted.dtype == torch.float32 and predicted.unique().numel() * 2 >= full[0].unique().numel()
    # The convolutions before the heads did run in reduced precision (the depth is not bit-identical).
    assert not torch.equal(full[0], mixed[0])
    # Reduced-precision features move the depth by a fraction of a percent, not by bfloat16's steps.
    assert ((mixed[0] - full[0]).abs() / full[0]).max() < 0.01
