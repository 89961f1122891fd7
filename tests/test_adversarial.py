"""GAN trainers: tiny generators/discriminators learn on tiny data; checkpoints resume exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.ndimage

from tests.test_training_fit import count_train_step_traces
from training import adversarial
from training.adversarial import (
    CycleGANTrainer,
    DCGANTrainer,
    GANCheckpoint,
    Pix2PixTrainer,
    SRGANTrainer,
    latest_checkpoint,
    pretrain_generator,
)

L = keras.layers


def _smooth_images(n, size, channels, seed):
    rng = np.random.default_rng(seed)
    x = scipy.ndimage.gaussian_filter(rng.uniform(-1, 1, (n, size, size, channels)), sigma=(0, 2, 2, 0))
    return (x / np.abs(x).max()).astype(np.float32)


def _patch_discriminator(size, channels, name, inputs=1, sigmoid=False):
    ins = [keras.Input((size, size, channels)) for _ in range(inputs)]
    x = ins[0] if inputs == 1 else L.Concatenate()(ins)
    x = L.Conv2D(8, 4, strides=2, padding="same")(x)
    x = L.LeakyReLU(0.2)(x)
    x = L.Conv2D(16, 4, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.LeakyReLU(0.2)(x)
    x = L.Conv2D(1, 3, padding="same", activation="sigmoid" if sigmoid else None)(x)
    return keras.Model(ins if inputs > 1 else ins[0], x, name=name)


def _image_generator(size, channels, name, dropout=0.0):
    """conv s2 -> conv -> (dropout) -> transposed conv + skip: a one-level U-Net."""
    inputs = keras.Input((size, size, channels))
    down = L.LeakyReLU(0.2)(L.Conv2D(16, 4, strides=2, padding="same")(inputs))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(down)))
    if dropout:
        x = L.Dropout(dropout)(x)
    x = L.Conv2DTranspose(16, 4, strides=2, padding="same")(L.Concatenate()([x, down]))
    x = L.Concatenate()([L.ReLU()(x), inputs])
    return keras.Model(inputs, L.Conv2D(channels, 3, padding="same", activation="tanh")(x), name=name)


def _first_last(history, key):
    return history.history[key][0], history.history[key][-1]


def test_dcgan_generator_moves_to_the_data():
    keras.utils.set_random_seed(0)
    latent = 8
    z = keras.Input((latent,))
    x = L.Reshape((4, 4, 8))(L.Dense(4 * 4 * 8)(z))
    # momentum 0.5: the inference-mode BN statistics must settle within the test's few steps
    x = L.BatchNormalization(momentum=0.5)(L.Conv2DTranspose(8, 4, strides=2, padding="same", use_bias=False)(x))
    x = L.ReLU()(x)
    generator = keras.Model(z, L.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(x))
    discriminator = keras.Sequential([keras.Input((16, 16, 1)), L.Conv2D(8, 4, strides=2, padding="same"),
                                      L.LeakyReLU(0.2), L.Flatten(), L.Dense(1)])
    pattern = 0.6 + 0.3 * _smooth_images(1, 16, 1, seed=1)[0]
    data = np.repeat(pattern[None], 32, axis=0)  # a one-image "distribution" the generator must move to
    trainer = DCGANTrainer(generator, discriminator, seed=3)
    assert trainer.from_logits and trainer.latent_dim == latent
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                    d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    distance = lambda: float(np.mean((keras.ops.convert_to_numpy(trainer.sample(16)) - pattern) ** 2))
    before = distance()
    traces = count_train_step_traces(trainer)
    history = trainer.fit(data, batch_size=32, epochs=60, verbose=0)
    assert len(traces) == 1, traces  # compile() built both optimizers: no second trace
    after = distance()
    print(f"DCGAN: MSE of samples to the data {before:.4f} -> {after:.4f}; "
          f"d_loss {history.history['d_loss'][0]:.3f} -> {history.history['d_loss'][-1]:.3f}")
    assert after < 0.5 * before
    assert np.isfinite(history.history["g_loss"]).all()


def test_srgan_content_loss_goes_down_and_pretraining():
    keras.utils.set_random_seed(0)
    hr = _smooth_images(16, 16, 3, seed=2)
    lr = hr.reshape(16, 8, 2, 8, 2, 3).mean(axis=(2, 4))
    inputs = keras.Input((8, 8, 3))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(16, 3, padding="same")(inputs))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(16, 3, padding="same")(L.UpSampling2D(2)(x)))
    generator = keras.Model(inputs, L.Conv2D(3, 3, padding="same", activation="tanh")(x))
    discriminator = keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(8, 3, strides=2, padding="same"),
                                      L.LeakyReLU(0.2), L.Flatten(), L.Dense(8), L.LeakyReLU(0.2),
                                      L.Dense(1, activation="sigmoid")])
    pre = pretrain_generator(generator, (lr, hr), epochs=3, learning_rate=1e-3, batch_size=16, verbose=0)
    assert pre.history["loss"][-1] < pre.history["loss"][0]
    trainer = SRGANTrainer(generator, discriminator)
    assert not trainer.from_logits  # sigmoid head detected
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.9))
    history = trainer.fit(lr, hr, batch_size=16, epochs=30, verbose=0)
    first, last = _first_last(history, "content_loss")
    print(f"SRGAN: content (MSE) loss {first:.5f} -> {last:.5f}")
    assert last < 0.6 * first
    # g_loss is content + 1e-3 * adversarial, step by step
    np.testing.assert_allclose(history.history["g_loss"],
                               np.add(history.history["content_loss"],
                                      1e-3 * np.array(history.history["adversarial_loss"])), rtol=1e-5)


def test_pix2pix_l1_goes_down_with_two_input_patchgan():
    keras.utils.set_random_seed(0)
    source = _smooth_images(8, 16, 3, seed=3)
    target = -source[..., ::-1]  # a fixed colour mapping to learn
    generator = _image_generator(16, 3, "g", dropout=0.5)
    discriminator = _patch_discriminator(16, 3, "d", inputs=2)
    trainer = Pix2PixTrainer(generator, discriminator)
    trainer.compile(g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    history = trainer.fit(source, target, batch_size=8, epochs=30, verbose=0)
    first, last = _first_last(history, "l1_loss")
    print(f"pix2pix: L1 {first:.4f} -> {last:.4f}")
    assert last < 0.6 * first
    np.testing.assert_allclose(history.history["g_loss"],
                               np.add(history.history["g_gan_loss"], 100 * np.array(history.history["l1_loss"])),
                               rtol=1e-5)


def test_cyclegan_cycle_loss_goes_down():
    keras.utils.set_random_seed(0)
    x = _smooth_images(8, 16, 3, seed=4)
    y = _smooth_images(8, 16, 3, seed=5)[..., ::-1] * 0.5
    trainer = CycleGANTrainer(_image_generator(16, 3, "g"), _image_generator(16, 3, "f"),
                              _patch_discriminator(16, 3, "dx"), _patch_discriminator(16, 3, "dy"))
    assert (trainer.cycle_weight, trainer.identity_weight) == (10.0, 5.0)
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    history = trainer.fit(x, y, batch_size=8, epochs=25, verbose=0)
    first, last = _first_last(history, "cycle_loss")
    print(f"CycleGAN: cycle L1 {first:.4f} -> {last:.4f}, identity "
          f"{history.history['identity_loss'][0]:.4f} -> {history.history['identity_loss'][-1]:.4f}")
    assert last < 0.6 * first


def _pix2pix(seed):
    keras.utils.set_random_seed(seed)
    trainer = Pix2PixTrainer(_image_generator(16, 3, "g", dropout=0.5), _patch_discriminator(16, 6, "d"), seed=seed)
    trainer.compile()
    return trainer


def _all_values(trainer):
    return {f"{group}/{i}": np.array(keras.ops.convert_to_numpy(v))
            for group, variables in trainer._state().items() for i, v in enumerate(variables)}


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    source = _smooth_images(8, 16, 3, seed=6)
    target = np.roll(source, 1, axis=-1)
    fit = dict(batch_size=4, shuffle=False, verbose=0)

    uninterrupted = _pix2pix(seed=7)
    for optimizer in (uninterrupted.g_optimizer, uninterrupted.d_optimizer):  # the paper's defaults
        assert (float(optimizer.learning_rate), float(optimizer.beta_1)) == pytest.approx((2e-4, 0.5))
    uninterrupted.fit(source, target, epochs=2, **fit)

    interrupted = _pix2pix(seed=7)
    interrupted.fit(source, target, epochs=1, callbacks=[GANCheckpoint(tmp_path / "ckpt")], **fit)
    path = latest_checkpoint(tmp_path / "ckpt")
    assert path.endswith("epoch_0001.h5")

    resumed = _pix2pix(seed=99)  # different initial weights, dropout and noise seeds
    saved = _all_values(interrupted)
    assert any(not np.array_equal(saved[k], v) for k, v in _all_values(resumed).items())
    epoch = resumed.load_checkpoint(path)
    assert epoch == 1
    restored = _all_values(resumed)
    assert restored.keys() == saved.keys()
    for key in saved:  # models (BN stats, dropout seed), optimizers (iterations, moments), noise seed
        np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)
    assert int(resumed.g_optimizer.iterations) == 2

    resumed.fit(source, target, epochs=2, initial_epoch=epoch, **fit)
    final, want = _all_values(resumed), _all_values(uninterrupted)
    worst = max(float(np.abs(final[k].astype(np.float64) - want[k]).max()) for k in want)
    print(f"resume vs uninterrupted: max |diff| over all variables {worst:.3g}")
    for key in want:
        np.testing.assert_allclose(final[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_checkpoint_rejects_other_trainers(tmp_path):
    trainer = _pix2pix(seed=1)
    path = trainer.save_checkpoint(tmp_path / "p.h5")
    x = _smooth_images(2, 16, 3, seed=0)
    other = CycleGANTrainer(_image_generator(16, 3, "g"), _image_generator(16, 3, "f"),
                            _patch_discriminator(16, 3, "dx"), _patch_discriminator(16, 3, "dy"))
    other.compile()
    with pytest.raises(ValueError, match="Pix2PixTrainer"):
        other.load_checkpoint(path)
    wider = Pix2PixTrainer(_image_generator(16, 3, "g"), _patch_discriminator(16, 3, "d", inputs=2))
    wider.compile()
    before = _all_values(wider)
    with pytest.raises(ValueError, match="variables|shape"):
        wider.load_checkpoint(path)
    after = _all_values(wider)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # all or nothing
    assert x.shape == (2, 16, 16, 3)
    uncompiled = Pix2PixTrainer(_image_generator(16, 3, "g"), _patch_discriminator(16, 6, "d"))
    with pytest.raises(ValueError, match="compile"):
        uncompiled.save_checkpoint(tmp_path / "q.h5")


def test_other_backends_get_a_clear_error(monkeypatch):
    monkeypatch.setattr(adversarial.keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="TensorFlow backend"):
        Pix2PixTrainer(_image_generator(16, 3, "g"), _patch_discriminator(16, 3, "d"))


def _moved(model, before):
    return max(float(np.abs(keras.ops.convert_to_numpy(w) - b).max()) for w, b in zip(model.trainable_weights, before))


def test_trainers_drive_the_kerasnets_builders():
    """Two steps of each trainer with the project's own GAN builders at small sizes.

    Eager (tracing four CycleGAN networks costs ~40 s on 2 cores); the compiled
    train steps are exercised by the tests above.
    """
    import kerasnets

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = lambda n, size: rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    cases = [
        (DCGANTrainer(kerasnets.build_dcgan_generator(latent_dim=8, image_size=8, filters=4),
                      kerasnets.build_dcgan_discriminator(image_size=8, filters=4)), (images(4, 8),)),
        (SRGANTrainer(kerasnets.build_srgan_generator(scale=2, input_shape=(8, 8, 3), blocks=1, filters=8),
                      kerasnets.build_srgan_discriminator(input_shape=(16, 16, 3))), (images(2, 8), images(2, 16))),
        (Pix2PixTrainer(kerasnets.build_pix2pix_generator(input_shape=(32, 32, 3), num_downs=3, filters=8),
                        kerasnets.build_patchgan_discriminator(input_shape=(32, 32, 3), filters=8)),
         (images(2, 32), images(2, 32))),
        (CycleGANTrainer(*(kerasnets.build_cyclegan_generator(input_shape=(32, 32, 3), filters=4) for _ in range(2)),
                         *(kerasnets.build_cyclegan_discriminator(input_shape=(32, 32, 3), filters=4) for _ in range(2))),
         (images(1, 32), images(1, 32))),
    ]
    for trainer, data in cases:
        trainer.compile(run_eagerly=True)
        generator = getattr(trainer, trainer._model_names[0])
        before = [keras.ops.convert_to_numpy(w) for w in generator.trainable_weights]
        history = trainer.fit(*data, batch_size=len(data[0]), epochs=2, verbose=0).history
        assert all(np.isfinite(v).all() for v in history.values()), (type(trainer).__name__, history)
        assert _moved(generator, before) > 0, type(trainer).__name__
