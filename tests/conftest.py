import warnings

import pytest

warnings.filterwarnings("ignore", module="brevitas")


@pytest.fixture(scope="session")
def tiny_data():
    """3,000 synthetic jets: enough for every split and a few batches, fast to train on."""
    from qapbo.data import DataConfig, load_data

    return load_data(DataConfig(n_rows=3000, seed=0))
