"""Learned per-weight precision (qapbo.nn.learned) and per-weight costs (qapbo.cost.perweight).

Forward values and gradients of the quantizers by hand on small tensors (the surrogate gradient
w.r.t. the fractional bits included), pruned weights exactly zero, the EBOPs term of a small net
against a hand count and against the cost module, the per-weight costs against HGQ2's and Hawks'
formulas, and a short training run where beta > 0 lowers EBOPs at a useful AUC.
"""

import math

import numpy as np
import pytest
import torch

from qapbo.cost.bops import linear_bops
from qapbo.cost.measure import linear_ebops
from qapbo.cost.perweight import (
    BOPS_DEFINITION,
    EBOPS_DEFINITION,
    layer_bops,
    layer_ebops,
    network_bops,
    network_ebops,
    perweight_costs,
)
from qapbo.errors import SpecError
from qapbo.nn.learned import (
    LearnedTagger,
    code_format,
    log_ramp,
    quantize_data,
    quantize_values,
    train_epoch,
    value_bits,
)
from qapbo.nn.metrics import macro_auc
from qapbo.train.hgq import hgq_bops, hgq_ebops

LN2 = math.log(2.0)


def t(v):
    return torch.tensor(v, dtype=torch.float32)


# ------------------------------------------------------------------------------ the quantizers

def test_value_quantizer_forward_and_gradients_by_hand():
    w = t([0.3125, -0.6875, 0.046875, 0.5, -0.5]).requires_grad_()
    phi = t([2.2, 0.9, 3.4, -0.3, 0.0]).requires_grad_()  # f = round(phi) = 2, 1, 3, 0, 0
    q, n = quantize_values(w, phi)
    # n = floor(w 2^f + 1/2): 1.25 -> 1, -1.375 -> -1, 0.375 -> 0, 0.5 -> 1 (half up), -0.5 -> 0 (half up)
    assert n.tolist() == [1, -1, 0, 1, 0]
    assert q.tolist() == [0.25, -0.5, 0.0, 1.0, 0.0]
    assert value_bits(n).tolist() == [2, 2, 0, 2, 0]  # magnitude bits + sign; 0 for a zero code
    g = t([1.0, 2.0, 3.0, 4.0, 5.0])
    q.backward(g)
    assert w.grad.tolist() == g.tolist()  # straight-through
    # the paper's surrogate: dq/df = ln2 * (w - q)
    expected = [1 * 0.0625, 2 * -0.1875, 3 * 0.046875, 4 * -0.5, 5 * -0.5]
    assert phi.grad.tolist() == pytest.approx([e * LN2 for e in expected], rel=1e-6)


def test_fractional_bits_round_half_to_even_and_pass_the_gradient_straight_through():
    w = t([0.75, 0.75]).requires_grad_()
    phi = t([1.5, 2.5]).requires_grad_()  # round half to even: 2, 2
    q, _ = quantize_values(w, phi)
    assert q.tolist() == [0.75, 0.75]
    q.sum().backward()
    assert phi.grad.tolist() == [0.0, 0.0]  # exact at 2 bits: no error, no surrogate gradient


def test_data_quantizer_with_relu_forward_and_gradients_by_hand():
    x = t([[0.375, -1.25], [2.875, 0.4375], [-0.625, 3.0]]).requires_grad_()
    phi = t([1.0, 2.0]).requires_grad_()
    q = quantize_data(x, phi, relu=True)
    # relu, then codes floor(h 2^f + 1/2): [[1, 0], [6, 2], [0, 12]]
    assert q.tolist() == [[0.5, 0.0], [3.0, 0.5], [0.0, 3.0]]
    g = t([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    q.backward(g)
    assert x.grad.tolist() == [[1.0, 0.0], [3.0, 4.0], [0.0, 6.0]]  # relu's gradient, straight-through round
    # ln2 * sum over rows of g * (h - q): column 0: 1 * -0.125 + 3 * -0.125; column 1: 4 * -0.0625
    assert phi.grad.tolist() == pytest.approx([-0.5 * LN2, -0.25 * LN2], rel=1e-6)


def test_data_quantizer_saturates_at_its_code_bounds_with_no_gradient_there():
    x = t([[0.375, -1.25], [2.875, 0.4375], [-0.625, 3.0]]).requires_grad_()
    phi = t([1.0, 2.0]).requires_grad_()
    q = quantize_data(x, phi, relu=True, code_lo=t([0.0, 0.0]), code_hi=t([3.0, 7.0]))
    # codes [[1, 0], [6 -> 3, 2], [0, 12 -> 7]]
    assert q.tolist() == [[0.5, 0.0], [1.5, 0.5], [0.0, 1.75]]
    q.backward(t([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert x.grad.tolist() == [[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]
    assert phi.grad.tolist() == pytest.approx([-0.125 * LN2, -0.25 * LN2], rel=1e-6)


def test_signed_data_quantizer_saturates_both_ways():
    x = t([[-3.0], [0.75], [5.0]])
    q = quantize_data(x, t([1.0]), code_lo=t([-4.0]), code_hi=t([3.0]))  # 3 bits with sign, f = 1
    assert q.tolist() == [[-2.0], [1.0], [1.5]]  # -6 -> -4, 0.75 * 2 = 1.5 -> 2 (half up), 10 -> 3


@pytest.mark.parametrize("n_lo,n_hi,width,lo,hi", [
    (0, 0, 0, 0, 0),      # every code 0: no bits
    (0, 1, 1, 0, 1),      # unsigned
    (0, 4, 3, 0, 7),
    (-1, 0, 1, -1, 0),    # a sign bit alone holds -1
    (-4, 3, 3, -4, 3),    # two's complement: -2^m needs no extra bit
    (-5, 3, 4, -8, 7),
    (-1, 4, 4, -8, 7),
])
def test_code_format(n_lo, n_hi, width, lo, hi):
    w, c_lo, c_hi = code_format(t([float(n_lo)]), t([float(n_hi)]))
    assert (w.item(), c_lo.item(), c_hi.item()) == (width, lo, hi)


def test_value_bits_is_qapbos_weight_bits():
    from qapbo.cost.measure import weight_bits

    n = np.arange(-70000, 70001, 7)
    assert value_bits(torch.from_numpy(n.astype(np.float32))).numpy().astype(np.int64).tolist() == weight_bits(n).tolist()


# ------------------------------------------------------------------------------ the network

def small_net() -> LearnedTagger:
    """2-2-2 with hand-set weights and bits (the EBOPs test counts it by hand)."""
    m = LearnedTagger(2, (2,), 2)
    with torch.no_grad():
        m.weight(0).copy_(t([[0.5, -0.25], [0.75, 0.0]]))
        m.weight(0, m.value_phi).fill_(2.0)
        m.bias(0).copy_(t([0.5, -1.0]))
        m.bias(0, m.value_phi).fill_(1.0)
        m.weight(1).copy_(t([[1.0, 0.5], [-0.5, 2.0]]))
        m.weight(1, m.value_phi).fill_(1.0)
        m.bias(1).copy_(t([0.0, 0.25]))
        m.bias(1, m.value_phi).fill_(2.0)
        m.data_phi.copy_(t([1.0, 2.0, 2.0, 3.0]))  # input features 1, 2; hidden neurons 2, 3
    return m


ROWS = t([[1.0, -0.5], [-2.0, 0.25]])


def test_ranges_are_tracked_in_training_and_kept_in_eval():
    m = small_net()
    m.train()
    m(ROWS)
    assert m.lo.tolist() == [-2.0, -0.5, 0.0, 0.0]
    # hidden pre-activations: row 0 (1.125, -0.25), row 1 (-0.5625, -2.5); after relu (1.125, 0), (0, 0)
    assert m.hi.tolist() == [1.0, 0.25, 1.125, 0.0]
    m.eval()
    m(10 * ROWS)
    assert m.hi.tolist() == [1.0, 0.25, 1.125, 0.0]
    m.calibrate(ROWS[:1])  # exactly what these rows produce
    assert m.lo.tolist() == [0.0, -0.5, 0.0, 0.0] and m.hi.tolist() == [1.0, 0.0, 1.125, 0.0]
    assert not m.training


def test_ebops_of_a_small_net_by_hand_and_by_the_cost_module():
    m = small_net()
    m.calibrate(ROWS)
    m.eval()
    # input widths: feature 0 at f=1 has codes -4..2 -> 3 bits (sign); feature 1 at f=2 codes -2..1 -> 2 bits
    # hidden widths: neuron 0 at f=2, max 1.125 -> code 5 -> 3 bits (unsigned); neuron 1 is always 0 -> 0 bits
    layers = m.fixed_point_layers()
    assert layers[0]["in_width"].tolist() == [3, 2] and layers[1]["in_width"].tolist() == [3, 0]
    # layer 0: weight codes [[2, -1], [3, 0]] -> bits [[3, 2], [3, 0]]; biases codes [1, -2] -> bits [2, 3]
    assert layers[0]["w_int"].tolist() == [[2, -1], [3, 0]] and layers[0]["w_width"].tolist() == [[3, 2], [3, 0]]
    assert layers[0]["b_int"].tolist() == [1, -2] and layers[0]["b_width"].tolist() == [2, 3]
    l0 = (3 * 3 + 2 * 2) + (3 * 3 + 2 * 0) + (2 + 3)  # 27
    # layer 1: weight codes [[2, 1], [-1, 4]] -> bits [[3, 2], [2, 4]]; bias codes [0, 1] -> bits [0, 2]
    l1 = (3 * 3 + 0 * 2) + (3 * 2 + 0 * 4) + (0 + 2)  # 17
    assert (l0, l1) == (27, 17)
    assert m.ebops().item() == l0 + l1
    assert network_ebops(layers) == (44, [27, 17])
    assert [linear_ebops(r["w_int"], r["in_width"], r["b_width"]) for r in layers] == [27, 17]
    # BOPs: layer 0 has p = 5/6 (one weight of four is 0), layer 1 p = 5/6 (one bias of two is 0)
    bops0 = 5 / 6 * 22 + (2 * 5 + 8) + 2 * 2 * 1
    bops1 = 5 / 6 * 15 + (2 * 3 + 11) + 2 * 2 * 1
    assert network_bops(layers) == (pytest.approx(bops0 + bops1), [pytest.approx(bops0), pytest.approx(bops1)])
    rec = perweight_costs(layers)
    assert rec["ebops"] == 44.0 and rec["ebops_definition"] == EBOPS_DEFINITION == "hgq2-ebops-v1"
    assert rec["bops_definition"] == BOPS_DEFINITION == "hawks2021-perweight-v1"


def test_ebops_gradient_by_hand():
    m = small_net()
    m.calibrate(ROWS)
    m.eval()
    m.ebops().backward()
    # d/d f_w,ij = width of input j where the weight is not pruned; a bias counts 1
    g = m.value_phi.grad
    assert m.weight(0, g).tolist() == [[3, 2], [3, 0]]
    assert m.bias(0, g).tolist() == [1, 1]
    assert m.weight(1, g).tolist() == [[3, 0], [3, 0]]  # hidden neuron 1 has 0 bits
    assert m.bias(1, g).tolist() == [0, 1]  # bias 0 of layer 1 is pruned
    # d/d f_in,j = sum of the bits of the weights it multiplies, where its width is not 0
    assert m.data_phi.grad.tolist() == [3 + 3, 2 + 0, 3 + 2, 0]


def test_the_forward_pass_is_the_fixed_point_arithmetic():
    m = small_net()
    m.calibrate(ROWS)
    m.eval()
    x = t([[1.0, -0.5], [-2.0, 0.25], [0.3, 9.0]])  # the last row saturates feature 1 at its top code 1
    layers = m.fixed_point_layers()
    h = x.numpy().astype(np.float64)
    for k, r in enumerate(layers):
        if k:
            h = np.maximum(h, 0)
        h = np.clip(np.floor(h * 2.0 ** r["in_f"] + 0.5), r["in_lo"], r["in_hi"]) * 2.0 ** -r["in_f"]
        h = h @ (r["w_int"] * 2.0 ** -r["w_f"]).T + r["b_int"] * 2.0 ** -r["b_f"]
    assert np.array_equal(m(x).detach().numpy().astype(np.float64), h)


def test_a_weight_at_zero_bits_is_exactly_zero_in_every_forward_pass():
    torch.manual_seed(0)
    m = LearnedTagger(3, (4,), 2)
    x = torch.randn(32, 3)
    with torch.no_grad():
        m.weight(0, m.value_phi)[1, 2] = -6.0  # f = -6: a step of 64, so |w| < 32 has code 0, 0 bits
    for mode in (True, False):
        m.train(mode)
        for scale in (1.0, 0.5, -1.0):  # the float weight moves; the pruned weight stays exactly zero
            with torch.no_grad():
                m.weight(0)[1, 2] = 0.007 * scale
            y = m(x)
            assert m.weight(0, m.value_codes())[1, 2] == 0
            q, _ = quantize_values(m.values, m.value_phi)
            assert m.weight(0, q)[1, 2].item() == 0.0
            ref = m(x)
            assert torch.equal(y, ref)
            with torch.no_grad():
                m.weight(0)[1, 2] = 0.0
            assert torch.equal(m(x), y)  # the same as a weight that is 0
    layers = m.fixed_point_layers()
    assert layers[0]["w_int"][1, 2] == 0 and layers[0]["w_width"][1, 2] == 0


def test_after_training_every_zero_bit_weight_is_zero(tiny_data):
    m, _ = trained(tiny_data, beta=3e-4, epochs=5)
    q, n = quantize_values(m.values, m.value_phi)
    bits = value_bits(n)
    assert (bits == 0).any()
    assert torch.all(q[bits == 0] == 0.0) and not torch.any(torch.signbit(q[bits == 0]))
    assert torch.all(q[bits > 0] != 0.0)


def test_clamp_keeps_a_pruned_weight_one_bit_from_revival():
    m = LearnedTagger(2, (2,), 2)
    with torch.no_grad():
        m.weight(0).copy_(t([[0.75, 3.0], [0.0, -0.1]]))
        m.weight(0, m.value_phi).fill_(-30.0)
        m.weight(1, m.value_phi).fill_(40.0)
    m.clamp_()
    # exponent e of |w| (0.75 -> 0, 3 -> 2, 0 -> 0, 0.1 -> -3): phi >= -(e + 1); phi <= 16
    assert m.weight(0, m.value_phi).tolist() == [[-1.0, -3.0], [-1.0, 2.0]]
    assert m.weight(1, m.value_phi).max().item() == 16.0
    _, n = quantize_values(m.weight(0), m.weight(0, m.value_phi))
    assert n.tolist() == [[0, 0], [0, 0]]  # pruned, and one bit more revives each
    _, n = quantize_values(m.weight(0), m.weight(0, m.value_phi) + 1)
    assert n.tolist() == [[1, 1], [0, -1]]


def test_bad_arguments_are_refused():
    with pytest.raises(SpecError):
        LearnedTagger(16, (0,), 5)
    with pytest.raises(SpecError):
        LearnedTagger(16, (8,), 5, weight_f0=40)
    with pytest.raises(SpecError):
        log_ramp(1, 10, 0.0, 1e-3)


def test_log_ramp():
    assert log_ramp(0, 100, 1e-7, 1e-3) == pytest.approx(1e-7)
    assert log_ramp(50, 100, 1e-7, 1e-3) == pytest.approx(1e-5)
    assert log_ramp(100, 100, 1e-7, 1e-3) == pytest.approx(1e-3)
    assert log_ramp(250, 100, 1e-7, 1e-3) == pytest.approx(1e-3)
    assert log_ramp(-5, 100, 1e-7, 1e-3) == pytest.approx(1e-7)


# ------------------------------------------------------------------------------ per-weight costs

def hgq_like_layers(seed: int) -> list[dict[str, np.ndarray]]:
    """Random layers in the form qapbo.train.hgq._layer_formats returns (Keras (inputs, outputs) kernels)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in ((6, 5), (5, 4), (4, 3)):
        w_f = rng.integers(-1, 5, (n, m))
        w_int = rng.integers(-9, 10, (n, m)) * (rng.random((n, m)) > 0.3)
        b_f = rng.integers(0, 4, m)
        b_int = rng.integers(-3, 4, m)
        out.append({"w": w_int * 2.0 ** -w_f, "w_f": w_f, "w_width": rng.integers(0, 7, (n, m)),
                    "b": b_int * 2.0 ** -b_f, "b_f": b_f, "b_width": rng.integers(0, 6, m),
                    "in_width": rng.integers(0, 9, n), "_w_int": w_int, "_b_int": b_int})
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perweight_costs_equal_hgq_bops_and_ebops(seed):
    layers = hgq_like_layers(seed)
    ours = [{"w_int": r["_w_int"].T, "w_width": r["w_width"].T, "in_width": r["in_width"], "b_int": r["_b_int"],
             "b_width": r["b_width"]} for r in layers]
    total, per = hgq_ebops(layers)
    assert network_ebops(ours) == (total, per)
    total, per = hgq_bops(layers)
    mine_total, mine_per = network_bops(ours)
    assert mine_total == pytest.approx(total, rel=1e-12) and mine_per == pytest.approx(per, rel=1e-12)


@pytest.mark.parametrize("w_bits,a_bits", [(2, 3), (4, 6), (8, 16)])
def test_perweight_bops_is_hawks_formula_for_uniform_widths(w_bits, a_bits):
    rng = np.random.default_rng(w_bits)
    m, n = 7, 12
    top = 2 ** (w_bits - 1) - 1
    w = rng.integers(-top, top + 1, (m, n)) * (rng.random((m, n)) > 0.4)
    b = rng.integers(-top, top + 1, m)
    p = (np.count_nonzero(w) + np.count_nonzero(b)) / (w.size + b.size)
    got = layer_bops(w, a_bits, np.full((m, n), w_bits), b)
    assert got == pytest.approx(linear_bops(n, m, w_bits, a_bits, p), rel=1e-12)


def test_perweight_ebops_defaults_and_refusals():
    w = np.array([[3, 0], [-1, 4]])
    assert layer_ebops(w, [2, 5]) == 2 * 3 + 5 * 0 + 2 * 2 + 5 * 4  # bits 3, 0, 2, 4
    assert layer_ebops(w, [2, 5], b_int=[0, 2]) == 30 + 3  # a bias by the bits of its value; a zero bias is free
    assert layer_ebops(w, [2, 5], b_int=[0, 2], b_width=[8, 8]) == 30 + 8
    with pytest.raises(ValueError):
        layer_ebops(w * 0.5, [2, 5])
    with pytest.raises(ValueError):
        layer_ebops(w, [2, 5], b_int=[1, 2, 3])


def test_the_ebops_term_equals_the_cost_module_on_a_trained_net(tiny_data):
    m, _ = trained(tiny_data, beta=1e-4, epochs=3)
    m.calibrate(torch.from_numpy(tiny_data.x_train))
    m.eval()
    assert m.ebops().item() == network_ebops(m.fixed_point_layers())[0]


# ------------------------------------------------------------------------------ training

def trained(data, beta: float, epochs: int = 15, seed: int = 0) -> tuple[LearnedTagger, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as qapbo's training (TrainConfig.threads): these nets are slower on two
    try:
        return _trained(data, beta, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _trained(data, beta: float, epochs: int, seed: int) -> tuple[LearnedTagger, float]:
    torch.manual_seed(seed)
    m = LearnedTagger(data.n_features, (16,), data.n_classes)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(epochs):
        train_epoch(m, opt, x, y, beta, 128, gen)
    m.calibrate(x)
    m.eval()
    return m, macro_auc(m.predict_proba(torch.from_numpy(data.x_test)).numpy(), data.y_test)


def test_beta_lowers_ebops_and_keeps_the_auc(tiny_data):
    m0, auc0 = trained(tiny_data, beta=0.0)
    m1, auc1 = trained(tiny_data, beta=1e-4)
    e0, e1 = m0.ebops().item(), m1.ebops().item()
    assert e1 < 0.8 * e0, (e0, e1)
    assert auc0 > 0.6 and auc1 > 0.6, (auc0, auc1)


def reference_loss(m: LearnedTagger, x: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """The same loss from per-layer tensors and plain autograd ops: value-preserving surrogates
    ``v + c * (f - f.detach())`` carry the paper's gradients, no packing, no custom nodes."""
    def st(p):  # round(phi) with a straight-through gradient
        return p + (torch.round(p) - p).detach()

    def quant(v, f, relu=False):
        h = torch.relu(v) if relu else v
        q = (torch.floor(h * 2.0 ** f + 0.5) * 2.0 ** -f).detach()
        return h + (q - h).detach() + LN2 * (h - q).detach() * (f - f.detach())

    def bits(b, f):  # a width's surrogate: integer bits fixed, + f where the width is not 0
        return b.detach() + (b > 0) * (f - f.detach())

    total, e = x, torch.zeros(())
    lanes = [st(m.data_phi[m.datalane(i)]) for i in range(len(m.widths) - 1)]
    a_bits = m.data_codes()[0]
    for i in range(len(m.widths) - 1):
        fw, fb = st(m.weight(i, m.value_phi)), st(m.bias(i, m.value_phi))
        total = quant(total, lanes[i], relu=i > 0)
        w, b = quant(m.weight(i), fw), quant(m.bias(i), fb)
        nw = torch.floor(m.weight(i) * 2.0 ** torch.round(m.weight(i, m.value_phi)) + 0.5)
        nb = torch.floor(m.bias(i) * 2.0 ** torch.round(m.bias(i, m.value_phi)) + 0.5)
        wb, bb = bits(value_bits(nw), fw), bits(value_bits(nb), fb)
        e = e + (wb * bits(a_bits[m.datalane(i)], lanes[i])).sum() + bb.sum()
        total = total @ w.T + b
    return torch.nn.functional.cross_entropy(total, y) + beta * e


def test_packed_network_gradients_equal_a_plain_autograd_reference():
    torch.manual_seed(1)
    m = LearnedTagger(5, (7, 4), 3)
    with torch.no_grad():
        m.value_phi.add_(torch.randint(-2, 3, m.value_phi.shape))
        m.data_phi.add_(torch.randint(-2, 3, m.data_phi.shape))
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    m.train()  # training: the ranges hold the batch, nothing saturates
    loss = torch.nn.functional.cross_entropy(m(x), y) + 1e-2 * m.ebops()
    loss.backward()
    got = [p.grad.clone() for p in (m.values, m.value_phi, m.data_phi)]
    m.zero_grad()
    ref = reference_loss(m, x, y, 1e-2)
    assert torch.allclose(ref, loss.detach())
    ref.backward()
    for g, p in zip(got, (m.values, m.value_phi, m.data_phi)):
        assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-6)
