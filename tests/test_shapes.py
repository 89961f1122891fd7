"""Output-size and receptive-field formulas against the notes and Keras itself."""

import keras
import pytest

from kerasnets.registry import build_for_shapes
from kerasnets.shapes import conv_output_size, receptive_fields


def test_notes_worked_example():
    # (2,3,32,32) -> conv(3,6,5,s1,p1) 30 -> maxpool(2,2) 15 -> conv(6,6,5,1,1) 13 -> maxpool(2, s1) 12
    sizes = [32]
    for kernel, stride, pad in [(5, 1, 1), (2, 2, 0), (5, 1, 1), (2, 1, 0)]:
        sizes.append(conv_output_size(sizes[-1], kernel, stride, pad))
    assert sizes == [32, 30, 15, 13, 12]


def test_formula_agrees_with_keras_layers():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(6, 5)(x)
    x = keras.layers.MaxPooling2D(2, 2)(x)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(6, 5)(x)
    x = keras.layers.MaxPooling2D(2, strides=1)(x)
    assert tuple(x.shape) == (None, 12, 12, 6)


@pytest.mark.parametrize("size,kernel,stride,dilation", [(224, 7, 2, 1), (17, 3, 2, 1), (50, 3, 1, 2), (13, 3, 2, 1)])
def test_padding_modes_match_keras(size, kernel, stride, dilation):
    for padding in ("same", "valid"):
        layer = keras.layers.Conv2D(1, kernel, strides=stride, padding=padding, dilation_rate=dilation)
        if stride > 1 and dilation > 1:
            continue
        out = layer.compute_output_shape((None, size, size, 1))[1]
        assert conv_output_size(size, kernel, stride, padding, dilation) == out


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel"):
        conv_output_size(10, 0)
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(3, 5)


def test_vgg16_receptive_field_is_212_at_pool5():
    rows = {row.layer: row for row in receptive_fields(build_for_shapes("vgg16", include_top=False))}
    assert rows["block1_conv1"].receptive_field == 3
    assert rows["block1_pool"].receptive_field == 6
    assert rows["block5_pool"].receptive_field == 212
    assert rows["block5_pool"].jump == 32


def test_backward_formula_agrees():
    # F(i) = (F(i+1) - 1) * S(i) + K(i), from one pool5 unit back to the image.
    layers = [(3, 1), (3, 1), (2, 2)] * 2 + [(3, 1)] * 3 + [(2, 2)] + ([(3, 1)] * 3 + [(2, 2)]) * 2
    field = 1
    for kernel, stride in reversed(layers):
        field = (field - 1) * stride + kernel
    assert field == 212
