"""The command line, run as users run it: a real subprocess of the installed console script."""

import json
import shutil
import subprocess
import sys

import pytest

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"
TINY = ["--rows", "1500", "--epochs", "3", "--batch-size", "128", "--lr", "3e-3", "--quiet"]


def run(*args, timeout=180):
    cmd = QAPBO.split() + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_train_prints_the_table():
    p = run("train", "--hidden", "16,8", "--bits", "6", *TINY)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for label in ["AUC (macro)", "AUC per class", "accuracy", "BOPs", "sparsity", "epochs", "seconds"]:
        assert label in out
    assert "SYNTHETIC" in out and "SYNTHETIC" in p.stderr
    assert "16-16-8-5 w6 a6 bn=affine" in out
    # BOPs by hand: 16*16*(36*6+... ) with b_a = 32 first, 6 after
    bops = 16 * 16 * (32 * 6 + 32 + 6 + 4) + 8 * 16 * (36 + 12 + 4) + 5 * 8 * (36 + 12 + 3)
    assert f"{bops:,}" in out


def test_train_json_and_per_layer_bits():
    p = run("train", "--hidden", "16,8", "--bits", "4,8,6", "--act-bits", "3,5", "--bn", "none", "--json", *TINY)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["model"]["weight_bits"] == [4, 8, 6] and rec["model"]["act_bits"] == [3, 5]
    assert rec["synthetic"] is True and rec["epochs"] == 3
    assert set(rec["auc_per_class"]) == {"g", "q", "w", "z", "t"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--bits", "40"], "bit width 40 for layer 1 is out of range"),
        (["--bits", "4,6"], "got 2 values for 4 layers"),
        (["--hidden", "64,x"], "not a comma-separated list of integers"),
        (["--epochs", "0"], "must be at least 1"),
        (["--bn", "batch"], "invalid choice: 'batch'"),
        (["--data", "hdf5"], "needs a path"),
        (["--data", "hdf5", "--data-path", "/no/such/dir"], "no such file or directory"),
        (["--lr", "nan"], "not a finite number"),
        (["--unknown-flag"], "unrecognized arguments"),
    ],
)
def test_bad_options_one_line_exit_2(args, message):
    p = run("train", *args, "--quiet")
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert message in lines[0]
    assert "Traceback" not in p.stderr


def test_no_command_shows_help_and_exits_2():
    p = run()
    assert p.returncode == 2 and "train" in p.stderr
