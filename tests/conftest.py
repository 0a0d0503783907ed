import sqlite3
import warnings

import pytest

warnings.filterwarnings("ignore", module="brevitas")


@pytest.fixture(scope="session")
def tiny_data():
    """3,000 synthetic jets: enough for every split and a few batches, fast to train on."""
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data

    return load_data(DataConfig(n_rows=3000, seed=0))


def count_trials(db, state: str) -> int:
    """Trials in ``state`` in an Optuna SQLite file, read with sqlite3 while another process writes it."""
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = ?", (state,)).fetchone()[0]
    except sqlite3.OperationalError:  # no file or no tables yet
        return 0
