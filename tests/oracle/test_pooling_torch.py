"""Oracle: torch's MaxPool2d(ceil_mode=True, return_indices=True) and MaxUnpool2d(output_size=...) give
what our MaxPoolingWithArgmax2D(ceil_mode=True) and three-input MaxUnpooling2D give (SegNet at odd sizes)."""

import numpy as np
import pytest

from kerasnets.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("height, width", [(45, 60), (23, 30), (7, 5), (8, 8)])
def test_ceil_pool_and_sized_unpool_match_torch(height, width):
    x = np.random.default_rng(height * width).normal(size=(2, height, width, 4)).astype("float32")
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = 9.0  # a tie: both keep the first in row-major order
    pooled, indices = MaxPoolingWithArgmax2D(2, ceil_mode=True)(x)
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    torch_pooled, torch_indices = torch.nn.MaxPool2d(2, ceil_mode=True, return_indices=True)(nchw)
    np.testing.assert_array_equal(np.asarray(pooled).transpose(0, 3, 1, 2), torch_pooled.numpy())
    np.testing.assert_array_equal(np.asarray(indices).transpose(0, 3, 1, 2), torch_indices.numpy())
    unpooled = MaxUnpooling2D(2)([pooled, indices, x])
    torch_unpooled = torch.nn.MaxUnpool2d(2)(torch_pooled, torch_indices, output_size=(height, width))
    np.testing.assert_array_equal(np.asarray(unpooled).transpose(0, 3, 1, 2), torch_unpooled.numpy())
