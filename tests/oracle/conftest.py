"""Oracle suite: torch/torchvision as the reference implementation.

Every test here is skipped when torch is not installed (`pip install .[oracle]`).
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
