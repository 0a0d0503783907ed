"""Two workers on a real PostgreSQL server (started here; .ci/run installs the server packages)."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"
PASSWORD = "s3cret-Pw"


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("pg_ctl")
    return os.path.dirname(os.path.realpath(exe)) if exe else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    pytest.importorskip("psycopg2")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed here (.ci/run installs Debian's postgresql)")
    # a directory of its own under /tmp: pytest's tmp dirs are private to root, the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="qapbo-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    prefix = []
    if os.geteuid() == 0:  # the server refuses to run as root: use the postgres account
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
        os.chmod(root, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(prefix + [f"{bindir}/initdb", "-D", str(data), "-U", "qapbo", "--auth=scram-sha-256",
                             f"--pwfile={pwfile}"], check=True, capture_output=True)
    subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "qapbo", "jets"],
                       check=True, capture_output=True, env=env)
        yield f"postgresql+psycopg2://qapbo:{PASSWORD}@127.0.0.1:{port}/jets"
    finally:
        subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


STUDY = """
name = "pg"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 15
patience = 15
batch_size = 64
lr = 0.003
[search]
sampler = "random"
n_trials = 6
heartbeat_interval = 1
grace_period = 3
[search.space]
n_layers = { low = 1, high = 2 }
width = { low = 4, high = 16 }
bits = { choices = [4, 8] }
"""


def test_two_workers_share_one_postgres_study(pg_url, tmp_path):
    (tmp_path / "pg.toml").write_text(STUDY)
    env = {**os.environ, "QAPBO_STORAGE": pg_url}  # keeps the password off the command line
    cmd = QAPBO.split() + ["worker", "pg.toml", "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert PASSWORD not in out + err  # passwords in storage URLs are never printed
        assert "qapbo:***@127.0.0.1" in out + err
    trials = optuna.load_study(study_name="pg-search", storage=pg_url).trials
    states = [t.state for t in trials]
    # the budget counts architectures evaluated: COMPLETE, or PRUNED when early stopping ended them
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 6
    assert TrialState.COMPLETE in states and TrialState.RUNNING not in states
    # both workers took part
    numbers = {int(line.split()[1]) for out, err in outs for line in err.splitlines() if line.startswith("trial ")}
    per_worker = [{int(line.split()[1]) for line in err.splitlines() if line.startswith("trial ")} for _, err in outs]
    assert all(per_worker), [err for _, err in outs]
    assert len(numbers) == 6


def test_unreachable_postgres_is_one_clear_line(tmp_path):
    (tmp_path / "pg.toml").write_text(STUDY)
    port = _free_port()
    p = subprocess.run(QAPBO.split() + ["search", "pg.toml", "--quiet", "--storage",
                                        f"postgresql+psycopg2://qapbo:{PASSWORD}@127.0.0.1:{port}/jets"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and PASSWORD not in p.stderr and "Traceback" not in p.stderr
    assert "cannot open storage postgresql+psycopg2://qapbo:***@127.0.0.1" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
