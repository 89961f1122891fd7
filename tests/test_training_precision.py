"""`precision="auto"`: the rule that picks a policy from the hardware, and training under it with float32
logits and loss. The hardware is faked (a cpuinfo file, a GPU list); bfloat16 arithmetic itself runs
here for real (emulated where the CPU lacks it, with the same rounding)."""

import keras
import numpy as np
import pytest

from training import precision as P
from training.fit import fit

AVX512_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2_ONLY = "flags\t\t: fpu sse2 avx avx2 fma\n"


_READ_FLAGS = P.cpu_bf16_flags  # the real reader, before any test replaces it


@pytest.fixture
def hardware(monkeypatch, tmp_path):
    """hardware(cpuinfo flags line, GPU capabilities) fakes what choose_precision sees."""
    def fake(flags, gpus=()):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text("processor\t: 0\n" + flags)
        monkeypatch.setattr(P, "cpu_bf16_flags", lambda: _READ_FLAGS(str(cpuinfo)))
        monkeypatch.setattr(P, "gpu_capabilities", lambda: list(gpus))
    return fake


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    bf16, plain = tmp_path / "a", tmp_path / "b"
    bf16.write_text("processor\t: 0\n" + AVX512_BF16 + "processor\t: 1\n" + AVX512_BF16)
    plain.write_text("processor\t: 0\n" + AVX2_ONLY)
    assert _READ_FLAGS(str(bf16)) == ("avx512_bf16",)
    assert _READ_FLAGS(str(plain)) == ()
    assert _READ_FLAGS(str(tmp_path / "missing")) == ()


@pytest.mark.parametrize("flags, gpus, expected", [
    (AVX2_ONLY, [], "float32"),
    (AVX512_BF16, [], "mixed_bfloat16"),
    (AVX512_BF16, [(8, 0)], "mixed_float16"),   # a GPU wins over the CPU
    (AVX2_ONLY, [(7, 0), (8, 6)], "mixed_float16"),
    (AVX2_ONLY, [(6, 1)], "float32"),           # Pascal: no tensor cores
    (AVX2_ONLY, [(6, 1), (8, 0)], "float32"),   # the slowest GPU decides
])
def test_auto_rule(hardware, flags, gpus, expected):
    hardware(flags, gpus)
    policy, reason = P.choose_precision("auto")
    assert policy == expected and reason


def test_explicit_choices(hardware):
    hardware(AVX2_ONLY)
    with pytest.warns(UserWarning, match="mixed_float16' ignored"):
        assert P.choose_precision("mixed_float16")[0] == "float32"
    with pytest.warns(UserWarning, match="emulated"):
        assert P.choose_precision("mixed_bfloat16")[0] == "mixed_bfloat16"
    assert P.choose_precision("float32")[0] == "float32"
    with pytest.raises(ValueError, match="precision"):
        P.choose_precision("bfloat16")


def _net(classes=3):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(classes, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="net")


def test_float32_head_reaches_into_nested_models():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inner = _net()
        inputs = keras.Input((8, 8, 3))
        wrapper = keras.Model(inputs, inner(keras.layers.RandomFlip(name="flip")(inputs)))
    finally:
        keras.config.set_dtype_policy(previous)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    assert keras.backend.standardize_dtype(wrapper(x).dtype) == "bfloat16"
    assert P.float32_head(wrapper) == ["predictions", "logits"]
    assert keras.backend.standardize_dtype(wrapper(x).dtype) == "float32"
    assert inner.get_layer("bn").dtype_policy.name == "mixed_bfloat16"  # the body stays mixed
    assert P.float32_head(wrapper) == []  # idempotent


def test_fit_trains_in_bfloat16_with_float32_logits(hardware):
    """A separable 3-class problem: bfloat16 training (what "auto" picks on a bf16 CPU) reaches the accuracy
    float32 reaches from the same initialisation, and its loss is computed from float32 logits."""
    hardware(AVX512_BF16)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.normal(size=(96, 8, 8, 3)).astype("float32") * 0.3
    x[np.arange(96), :, :, y] += 1.0
    results = {}
    for precision in ("float32", "auto"):
        keras.utils.set_random_seed(1)
        results[precision] = fit(_net, x, y=y, epochs=6, batch_size=16, verbose=0, learning_rate=1e-2,
                                 precision=precision, jit_compile=False)
    mixed = results["auto"]
    assert mixed["precision"] == "mixed_bfloat16" and "avx512_bf16" in mixed["precision_reason"]
    model = mixed["model"]
    assert model.get_layer("conv").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("logits").dtype_policy.name == "float32"
    assert keras.backend.standardize_dtype(model(x[:2]).dtype) == "float32"
    assert results["float32"]["model"].get_layer("conv").dtype_policy.name == "float32"
    accuracy = {p: r["history"]["accuracy"][-1] for p, r in results.items()}
    assert accuracy["float32"] > 0.9 and abs(accuracy["auto"] - accuracy["float32"]) <= 0.05, accuracy


def test_fit_auto_with_a_built_model_keeps_float32(hardware):
    hardware(AVX512_BF16)
    x, y = np.zeros((4, 8, 8, 3), "float32"), np.array([0, 1, 2, 0])
    result = fit(_net(), x, y=y, epochs=1, verbose=0, jit_compile=False)
    assert result["precision"] == "float32" and "build function" in result["precision_reason"]
    with pytest.raises(ValueError, match="function that builds it"):
        fit(_net(), x, y=y, epochs=1, verbose=0, precision="mixed_bfloat16")
