"""Models: the fused fast path equals the Brevitas modules bit for bit; masks hold; specs validate."""

import pytest
import torch

from qapbo.errors import SpecError
from qapbo.nn.models import act_scale_param, build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.loop import train

SPECS = [
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=32),
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=8),
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=4, bn="no-affine"),
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=6, bn="no-stats"),
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=3, bn="none", input_bits=6),
    ModelSpec(n_inputs=16, n_classes=5, weight_bits=(4, 8, 6, 12), act_bits=(2, 16, 32)),
    ModelSpec(n_inputs=16, n_classes=5, hidden=(20,), weight_bits=(5, 32), bn="affine"),
    ModelSpec(n_inputs=16, n_classes=5, hidden=(12, 10, 8, 6, 4), weight_bits=2),
]


def _masked(model, keep=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.masks():
            m.copy_((torch.rand(m.shape, generator=g) < keep).float())
    model.apply_masks_()
    return model


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
@pytest.mark.parametrize("act_scale", [None, 0.3])
def test_fast_path_equals_brevitas_modules(spec, act_scale):
    model = _masked(build_model(spec, seed=1))
    if act_scale is not None:  # small learned scale: the activation clamp acts on many values
        with torch.no_grad():
            for act in model.acts:
                if hasattr(act, "act_quant"):
                    act_scale_param(act).fill_(act_scale)
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(2)) * 2
    params = [p for p in model.parameters() if p.requires_grad]
    for mode in ("train", "eval"):
        model.train(mode == "train")
        y_fast = model(x)
        y_ref = model.reference_forward(x)
        assert torch.equal(y_fast, y_ref)
        g = torch.randn_like(y_fast)
        g_fast = torch.autograd.grad(y_fast, params, g, allow_unused=True)
        g_ref = torch.autograd.grad(y_ref, params, g, allow_unused=True)
        for p_fast, p_ref in zip(g_fast, g_ref):
            assert (p_fast is None) == (p_ref is None)
            if p_fast is not None:
                assert torch.equal(p_fast, p_ref)


def test_weight_ties_share_the_max_gradient_like_brevitas():
    model = build_model(ModelSpec(hidden=(4,), n_inputs=3, n_classes=2, weight_bits=4, bn="none"), seed=0)
    with torch.no_grad():
        w = model.weight_params()[0]
        w[0, 0], w[1, 1], w[2, 2] = 0.7, -0.7, 0.7  # three-way tie for the abs-max
        w.clamp_(-0.7, 0.7)
    x = torch.randn(50, 3)
    params = list(model.parameters())
    g1 = torch.autograd.grad(model(x).sum(), params)
    g2 = torch.autograd.grad(model.reference_forward(x).sum(), params)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_quantized_weights_take_at_most_2_to_the_b_minus_1_levels():
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=3), seed=0)
    qw = model.linears[1].quant_weight()
    levels = torch.unique(qw.value.detach() / qw.scale.detach()).round()
    assert set(levels.tolist()) <= {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}  # narrow range, 3 bits
    assert act_scale_param(model.acts[0]).item() == 6.0  # PROTOCOL: learned scale initialised at 6


def test_pruned_weights_stay_exactly_zero_through_training(tiny_data):
    model = _masked(build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=6), seed=0), keep=0.3)
    masks = [m.clone() for m in model.masks()]
    before = [w.detach().clone() for w in model.weight_params()]
    seen = []
    # ~1,800 training rows / batch 64 = 29 steps per epoch; 4 epochs > 100 optimizer steps
    cfg = TrainConfig(epochs=4, patience=10, batch_size=64, lr=1e-2, l1=0.0, seed=0)

    def check(log):
        for lin, w, m in zip(model.linears, model.weight_params(), masks):
            assert torch.all(w[m == 0] == 0)
            # the quantized weight Brevitas would use in a forward pass is zero there too
            assert torch.all(lin.quant_weight().value[m == 0] == 0)
        seen.append(log.epoch)

    result = train(model, tiny_data, cfg, callback=check)
    assert seen == [1, 2, 3, 4] and result.epochs == 4
    steps = 4 * (len(tiny_data.y_train) // 64 + (len(tiny_data.y_train) % 64 > 1))
    assert steps >= 100
    for w, m, b in zip(model.weight_params(), masks, before):
        assert torch.all(w[m == 0] == 0)
        assert not torch.equal(w[m == 1], b[m == 1])  # survivors did train


def test_same_seed_same_initial_weights():
    a = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=6), seed=7).state_dict()
    b = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=6), seed=7).state_dict()
    c = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=6), seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"weight_bits": 1}, "bit width 1 for layer 1 is out of range"),
        ({"weight_bits": 17}, "out of range"),
        ({"weight_bits": (8, 8)}, "2 values for 4 layers"),
        ({"act_bits": 40}, "activation bits: bit width 40"),
        ({"input_bits": 0}, "input bits"),
        ({"bn": "batch"}, "unknown BN mode 'batch'"),
        ({"hidden": (64, 0)}, "positive integers"),
        ({"n_classes": 1}, "2 classes"),
    ],
)
def test_bad_specs_say_what_is_wrong(kwargs, match):
    with pytest.raises(SpecError, match=match):
        ModelSpec(**kwargs)


def test_spec_round_trips_through_dict():
    spec = ModelSpec(n_inputs=16, n_classes=5, hidden=(10, 5), weight_bits=(4, 6, 8), act_bits=(3, 5), input_bits=8, bn="none")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.describe() == "16-10-5-5 w4/6/8 a3/5 in8 bn=none"


@pytest.mark.parametrize("spec", [ModelSpec(n_inputs=16, n_classes=5, weight_bits=4), ModelSpec(n_inputs=16, n_classes=5, weight_bits=6, input_bits=8)],
                         ids=lambda s: s.describe())
def test_fast_path_follows_load_state_dict(spec):
    # Brevitas rebuilds quantizer modules on load_state_dict: the fast path must see new values.
    model = build_model(spec, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k in state:
        if k.endswith("scaling_impl.value"):
            state[k].fill_(0.7)
    fresh = build_model(spec, seed=1)
    fresh.load_state_dict(state)
    x = torch.randn(64, 16) * 3
    fresh.eval()
    assert torch.equal(fresh(x), fresh.reference_forward(x))
    model.load_state_dict(state)
    model.eval()
    assert torch.equal(model(x), fresh(x))


def test_spec_takes_its_shape_from_the_data_or_refuses_to_guess(tiny_data):
    from qapbo.train.config import TrainConfig
    from qapbo.train.measure import train_and_measure

    with pytest.raises(SpecError, match="does not guess"):
        build_model(ModelSpec(hidden=(8,)))
    spec = ModelSpec.for_data(tiny_data, hidden=(8,))
    assert (spec.n_inputs, spec.n_classes) == (16, 5) and spec.describe().startswith("16-8-5")
    assert ModelSpec(hidden=(8,)).describe().startswith("?-8-?")
    with pytest.raises(SpecError, match="the model has 10 inputs and 5 classes but the data has 16 features"):
        train_and_measure(tiny_data, ModelSpec(n_inputs=10, n_classes=5, hidden=(8,)), TrainConfig(epochs=1))
    rec = train_and_measure(tiny_data, ModelSpec(hidden=(8,)), TrainConfig(epochs=1, batch_size=512)).record
    assert rec["model"]["n_inputs"] == 16 and rec["model"]["n_classes"] == 5
