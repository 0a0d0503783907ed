"""Progress follows the terminal: a log file gets plain lines, never bar redraws."""

import re
import shutil
import subprocess
import sys

import pytest

from qapbo.progress import resolve

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"
CONTROL = re.compile(r"\r|\x1b\[")  # carriage returns and ANSI cursor movement: bar redraws

# The quickstart's QAP part, shrunk: two precisions, three levels, few jets and epochs.
STUDY = """
name = "qs"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 3
lr = 0.003
batch_size = 128
patience = 2
[qap]
hidden = [16, 8]
precisions = [32, 6]
modes = ["ft"]
schedule = [0.0, 0.5, 0.8]
"""


def test_qap_log_file_has_one_line_per_level_and_no_control_sequences(tmp_path):
    (tmp_path / "qs.toml").write_text(STUDY)
    log = tmp_path / "qap.log"
    with open(log, "w") as err:  # stderr is a file, as under nohup or a batch scheduler
        p = subprocess.run(QAPBO.split() + ["qap", "qs.toml"], cwd=tmp_path, stderr=err, stdout=subprocess.PIPE,
                           text=True, timeout=300)
    assert p.returncode == 0, log.read_text()
    text = log.read_bytes().decode()  # bytes: read_text would turn \r into \n
    assert not CONTROL.search(text), repr(text[:500])
    lines = text.splitlines()
    levels = [line for line in lines if re.search(r" level +\d+ \(", line)]
    assert len(levels) == 6  # 2 precisions x 3 levels, one line each
    assert len(lines) == len(levels) + 1  # plus the opening "levels already stored" line
    assert "6 levels stored" in p.stdout


@pytest.mark.parametrize("mode,bars", [("bars", True), ("lines", False)])
def test_train_progress_option_forces_a_mode(tmp_path, mode, bars):
    args = ["train", "--hidden", "8", "--rows", "1500", "--epochs", "10", "--patience", "20", "--batch-size", "256",
            "--progress", mode]
    with open(tmp_path / "err", "w") as err:
        p = subprocess.run(QAPBO.split() + args, stderr=err, stdout=subprocess.PIPE, text=True, timeout=300)
    text = (tmp_path / "err").read_bytes().decode()
    assert p.returncode == 0, text
    assert bool(CONTROL.search(text)) is bars
    if not bars:
        assert "epoch   10/10" in text and "trained 10 epochs" in text


def test_resolve_follows_the_stream(tmp_path):
    with open(tmp_path / "f", "w") as f:
        assert resolve("auto", f) == "lines" and resolve(True, f) == "lines"
    assert resolve(False) == "lines" and resolve("none") == "none" and resolve("bars") == "bars"
    with pytest.raises(ValueError):
        resolve("fancy")
