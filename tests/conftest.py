from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from lure.paths import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real image pairs); skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (a user's clone): real-data test skipped")
    return path


def pytest_configure(config):
    # The unit tests run small tensors: one intra-op thread avoids OpenMP spin-waiting when
    # the two CI cores are shared with DataLoader workers or subprocesses.
    import torch

    torch.set_num_threads(1)
    # full-size images (640x480 and larger) would otherwise fault in fresh pages on every layer
    from lure.runtime import retain_freed_memory

    retain_freed_memory()


def pytest_unconfigure(config):
    # Prefect stops its temporary API server at interpreter exit and logs that to a console
    # stream pytest has already closed; without this, logging prints a spurious traceback.
    import logging

    logging.raiseExceptions = False
