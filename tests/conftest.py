from __future__ import annotations

import os
from dataclasses import dataclass
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
    """``../shared/data`` (real image pairs); skips the test when it is absent. Only for assertions
    that hold on real images alone: each such test has a counterpart on generated pairs."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (a user's clone): real-data test skipped")
    return path


@dataclass(frozen=True)
class PairFolder:
    """Aligned pairs ``root/ir/<name>`` (infrared) and ``root/vi/<name>`` (visible), equal names."""

    root: Path
    real: bool  # True: RoadScene of ../shared/data; False: generated demo scenes

    def names(self) -> list[str]:
        """The pairs' file names, sorted."""
        return sorted(p.name for p in (self.root / "ir").iterdir())


@pytest.fixture(scope="session")
def demo_pairs(tmp_path_factory) -> PairFolder:
    """Five generated demo scenes (160 x 224 PNG), made in a second; the same in every clone."""
    from tests.model_helpers import write_demo_pairs

    return PairFolder(write_demo_pairs(tmp_path_factory.mktemp("demo-pairs")), real=False)


@pytest.fixture(scope="session")
def fusion_pairs(demo_pairs) -> PairFolder:
    """Pairs for end-to-end tests: RoadScene of ``../shared/data`` when present, else the generated
    :func:`demo_pairs` (a user's clone), so these tests never skip."""
    shared = shared_data_dir()
    if shared is not None and (shared / "roadscene" / "ir").is_dir():
        return PairFolder(shared / "roadscene", real=True)
    return demo_pairs


@pytest.fixture(scope="session")
def niqe_params(tmp_path_factory) -> Path:
    """NIQE's pristine model: ``../shared/data/niqe/niqe_pris_params.npz`` when present, else a model
    fitted on generated demo scenes (valid NIQE inputs; its scores are not comparable to published ones)."""
    shared = shared_data_dir()
    if shared is not None and (shared / "niqe" / "niqe_pris_params.npz").is_file():
        return shared / "niqe" / "niqe_pris_params.npz"
    from tests.model_helpers import fit_demo_niqe_params

    return fit_demo_niqe_params(tmp_path_factory.mktemp("niqe") / "niqe_pris_params.npz")


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
