"""Training: determinism, early stopping with best-state restore, failures."""

import math

import pytest
import torch

from qapbo.errors import SpecError, TrainingError
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.loop import train, validation_loss
from qapbo.train.measure import train_and_measure

FAST = dict(epochs=6, lr=3e-3, batch_size=128, patience=3)


def test_same_seed_gives_identical_metrics(tiny_data):
    spec = ModelSpec(n_inputs=16, n_classes=5, weight_bits=6)
    a = train_and_measure(tiny_data, spec, TrainConfig(seed=3, **FAST)).record
    b = train_and_measure(tiny_data, spec, TrainConfig(seed=3, **FAST)).record
    c = train_and_measure(tiny_data, spec, TrainConfig(seed=4, **FAST)).record
    keys = ["auc", "auc_per_class", "accuracy", "bkg_eff_at_sig50", "bops", "best_val_loss", "epochs"]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert a["auc"] != c["auc"]


def test_early_stopping_restores_the_best_state(tiny_data):
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=32), seed=0)
    # a large learning rate makes validation loss bounce, so the best epoch is not the last
    cfg = TrainConfig(epochs=40, lr=0.05, batch_size=64, patience=2, seed=0, l1=0.0)
    result = train(model, tiny_data, cfg)
    assert result.stopped_early and result.epochs < 40
    assert result.epochs - result.best_epoch == 2
    best = min(h.val_loss for h in result.history)
    assert result.best_val_loss == best == result.history[result.best_epoch - 1].val_loss
    xv, yv = torch.from_numpy(tiny_data.x_val), torch.from_numpy(tiny_data.y_val)
    assert validation_loss(model, xv, yv) == pytest.approx(best, rel=1e-6)


def test_callback_sees_every_epoch_and_can_stop_training(tiny_data):
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=4), seed=0)
    seen = []

    class Stop(Exception):
        pass

    def cb(log):
        seen.append((log.epoch, log.improved))
        if log.epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        train(model, tiny_data, TrainConfig(seed=0, **FAST), callback=cb)
    assert [e for e, _ in seen] == [1, 2, 3] and seen[0][1] is True


def test_non_finite_loss_is_a_training_error(tiny_data):
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=32), seed=0)
    with torch.no_grad():
        model.weight_params()[0][0, 0] = math.nan
    with pytest.raises(TrainingError, match="loss became nan at epoch 1"):
        train(model, tiny_data, TrainConfig(seed=0, **FAST))


def test_threads_are_set_on_purpose(tiny_data):
    before = torch.get_num_threads()
    try:
        train(build_model(ModelSpec(n_inputs=16, n_classes=5), seed=0), tiny_data, TrainConfig(epochs=1, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"lr": -1.0}, {"batch_size": 1}, {"patience": 0}, {"l1": -1e-3}])
def test_bad_training_config(kwargs):
    with pytest.raises(SpecError):
        TrainConfig(**kwargs)


def test_record_is_complete(tiny_data):
    rec = train_and_measure(tiny_data, ModelSpec(n_inputs=16, n_classes=5, hidden=(16, 8), weight_bits=4), TrainConfig(seed=0, **FAST)).record
    for key in ["auc", "auc_per_class", "accuracy", "bkg_eff_at_sig50", "sparsity", "sparsity_per_layer", "bops",
                "bops_per_layer", "bops_definition", "epochs", "seconds", "data_fingerprint", "model", "versions"]:
        assert key in rec
    assert rec["synthetic"] is True and rec["data"]["synthetic"] is True
    assert set(rec["auc_per_class"]) == {"g", "q", "w", "z", "t"}
    assert 0.5 < rec["auc"] <= 1.0
