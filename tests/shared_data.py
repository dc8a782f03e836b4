"""Where the test images are: ``$PORTRAIT_STYLE_TEST_DATA``, or ../shared/data beside the repo.

One place for every test module (and conftest's skip reasons) to agree on.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PORTRAIT_STYLE_TEST_DATA"
SHARED_DATA = Path(os.environ.get(DATA_ENV)
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
