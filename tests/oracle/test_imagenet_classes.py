"""The shipped ImageNet class list equals torchvision's, index for index."""

import pytest

torchvision = pytest.importorskip("torchvision")

from kerasnets.imagenet import class_names, decode_predictions  # noqa: E402


def test_class_names_equal_torchvision():
    from torchvision.models import ResNet18_Weights

    assert list(class_names("imagenet")) == list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_decode_predictions_uses_torchvision_indices():
    """keras' names (underscores) for torchvision's index order."""
    import numpy as np
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    preds = np.zeros((1, 1000), "float32")
    preds[0, [207, 1, 999]] = [0.5, 0.3, 0.2]
    decoded = decode_predictions(preds, top=3)[0]
    assert [name for _, name, _ in decoded] == [categories[i].replace(" ", "_") for i in (207, 1, 999)]
