"""GAN training as `keras.Model` subclasses whose `train_step` `model.fit` drives.

    trainer = Pix2PixTrainer(generator, discriminator)
    trainer.compile()                              # Adam(2e-4, beta_1=0.5) x 2, as the paper
    trainer.fit(dataset_of_(input, target), epochs=..., callbacks=[GANCheckpoint("ckpt")])

Trainers (losses as the papers / reference code define them):

* `DCGANTrainer`: data = real images; z ~ N(0, 1); D: BCE(real, 1) +
  BCE(G(z), 0); G: BCE(D(G(z)), 1) (non-saturating); Adam(2e-4, 0.5).
* `SRGANTrainer`: data = (lr, hr); G: content(hr, G(lr)) + 1e-3 *
  BCE(D(G(lr)), 1), content = `training.perceptual.VGGContentLoss` (SRGAN's
  VGG54 / 12.75) or pixel MSE (SRResNet-MSE); D: BCE(hr, 1) + BCE(G(lr), 0);
  Adam(1e-4, 0.9) as the paper. `pretrain_generator` is the optional MSE
  pre-training (SRResNet) with an ordinary `compile`/`fit`.
* `Pix2PixTrainer`: data = (input, target); G: BCE(D(x, G(x)), 1) + 100 *
  L1(target, G(x)); D: (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) / 2 (the
  paper halves D's objective); Adam(2e-4, beta_1=0.5).
* `CycleGANTrainer`: data = (x, y) unpaired batches; least-squares GAN
  losses (the paper), cycle lambda 10, identity 0.5 * lambda = 5, D's loss
  halved. The paper's pool of 50 past fakes is not kept: D sees the current
  batch's fakes (as TensorFlow's CycleGAN tutorial).

Discriminators may end in logits or a sigmoid: ``from_logits=None`` looks at
the last layer's activation. A discriminator with two inputs (pix2pix's
PatchGAN as in TensorFlow's tutorial) gets ``[condition, image]``; one with a
single input gets them concatenated on the channel axis.

The train steps use `tf.GradientTape`: TensorFlow backend only (a clear
error otherwise). Checkpoints (`save_checkpoint` / `load_checkpoint`,
`GANCheckpoint`) hold every variable of every sub-model (BN statistics and
dropout seed states included), every optimizer's state (step count,
moments) and the trainer's noise seed, so a resumed run continues exactly
where the saved one stopped.
"""

from __future__ import annotations

import os

import h5py
import keras
from keras import ops

from training.fit import build_optimizer
from training.optimizers import prepare_optimizer

__all__ = [
    "CycleGANTrainer", "DCGANTrainer", "GANCheckpoint", "GANTrainer", "Pix2PixTrainer", "SRGANTrainer",
    "latest_checkpoint", "pretrain_generator",
]


def _require_tensorflow(name):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{name} trains with tf.GradientTape and needs the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow). Received backend: {backend!r}"
        )


def _ends_with_sigmoid(model):
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return activation is keras.activations.sigmoid or getattr(activation, "__name__", "") == "sigmoid"


def _bce(target_value, outputs, from_logits):
    target = ops.full_like(outputs, target_value)
    return ops.mean(keras.losses.binary_crossentropy(target, outputs, from_logits=from_logits))


def _mse_to(target_value, outputs):
    return ops.mean(ops.square(outputs - target_value))


def _l1(a, b):
    return ops.mean(ops.abs(a - b))


class GANTrainer(keras.Model):
    """Base class: sub-models and optimizers by name, loss trackers, exact checkpoints.

    Subclasses set `_model_names` (attribute names of the sub-models) and
    `_optimizer_targets` (optimizer attribute -> the sub-models it updates),
    and implement `train_step`.
    """

    _model_names: tuple = ()
    _optimizer_targets: dict = {}
    _loss_names: tuple = ()

    def __init__(self, seed=None, **kwargs):
        _require_tensorflow(type(self).__name__)
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self._loss_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _set_optimizers(self, optimizers, defaults):
        for attr, (lr, beta_1) in defaults.items():
            optimizer = optimizers.get(attr)
            setattr(self, attr, optimizer if optimizer is not None else keras.optimizers.Adam(lr, beta_1=beta_1))

    def compile(self, **kwargs):
        """Sets the optimizers (keyword per optimizer; Adam with the paper's settings by default)."""
        optimizers = {k: kwargs.pop(k) for k in list(kwargs) if k in self._optimizer_targets}
        self._set_optimizers(optimizers, self._default_optimizers)
        super().compile(**kwargs)
        self._build_optimizers()  # now, or the first train step is traced twice (training.fit.build_optimizer)

    def _update(self, tape, loss, optimizer_attr):
        variables = [v for name in self._optimizer_targets[optimizer_attr]
                     for v in getattr(self, name).trainable_variables]
        grads = tape.gradient(loss, variables)
        getattr(self, optimizer_attr).apply_gradients(zip(grads, variables))

    def _log(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _build_optimizers(self):
        for attr, names in self._optimizer_targets.items():
            optimizer = getattr(self, attr, None)
            if optimizer is None:
                raise ValueError(f"Call compile() before saving or loading a checkpoint ({attr} is not set)")
            prepare_optimizer(optimizer, [v for name in names for v in getattr(self, name).trainable_variables])

    def _state(self):
        """name -> list of variables, in a fixed order."""
        self._build_optimizers()
        state = {f"models/{name}": list(getattr(self, name).variables) for name in self._model_names}
        state.update({f"optimizers/{attr}": list(getattr(self, attr).variables) for attr in self._optimizer_targets})
        state["trainer/seed"] = [self.seed_generator.state]
        return state

    def save_checkpoint(self, path, epoch=None):
        """Writes every sub-model, optimizer and seed variable to an h5 file, atomically.

        Args:
            path: the file to write.
            epoch: the number of completed epochs, stored for `load_checkpoint`.

        Returns:
            `path`.
        """
        from kerasnets.saving import atomic_path

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for group_name, variables in self._state().items():
                group = f.create_group(group_name)
                for i, variable in enumerate(variables):
                    dataset = group.create_dataset(f"{i:05d}", data=ops.convert_to_numpy(variable))
                    dataset.attrs["path"] = variable.path
            f.attrs["trainer"] = type(self).__name__
            f.attrs["epoch"] = -1 if epoch is None else int(epoch)
        return os.fspath(path)

    def load_checkpoint(self, path):
        """Restores a `save_checkpoint` file; all or nothing.

        Args:
            path: the file.

        Returns:
            The stored epoch count (pass it to ``fit(initial_epoch=...)``), or
            None if none was stored.

        Raises:
            ValueError: the file belongs to another trainer or its variables
                do not match this trainer's (nothing is assigned then).
        """
        state = self._state()
        with h5py.File(path, "r") as f:
            if f.attrs.get("trainer") != type(self).__name__:
                raise ValueError(f"{path} is a {f.attrs.get('trainer')!r} checkpoint, not {type(self).__name__}")
            plan = []
            for group_name, variables in state.items():
                group = f.get(group_name)
                if group is None or len(group) != len(variables):
                    found = 0 if group is None else len(group)
                    raise ValueError(f"{path}: {group_name} holds {found} variables, this trainer has {len(variables)}")
                for i, variable in enumerate(variables):
                    array = group[f"{i:05d}"][...]
                    if tuple(array.shape) != tuple(variable.shape):
                        raise ValueError(f"{path}: {group_name}/{variable.path} has shape {array.shape}, "
                                         f"expected {tuple(variable.shape)}")
                    plan.append((variable, array))
            epoch = int(f.attrs.get("epoch", -1))
        for variable, array in plan:
            variable.assign(array)
        return None if epoch < 0 else epoch


class GANCheckpoint(keras.callbacks.Callback):
    """Saves ``{directory}/epoch_{N:04d}.h5`` (N = completed epochs) every `every` epochs.

    Resume with ``epoch = trainer.load_checkpoint(latest_checkpoint(directory))``
    and ``trainer.fit(..., initial_epoch=epoch)``.
    """

    def __init__(self, directory, every=1):
        super().__init__()
        self.directory = os.fspath(directory)
        self.every = int(every)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.model.save_checkpoint(os.path.join(self.directory, f"epoch_{epoch + 1:04d}.h5"), epoch=epoch + 1)


def latest_checkpoint(directory):
    """The `GANCheckpoint` file with the most epochs in `directory`, or None."""
    if not os.path.isdir(directory):
        return None
    names = sorted(n for n in os.listdir(directory) if n.startswith("epoch_") and n.endswith(".h5"))
    return os.path.join(directory, names[-1]) if names else None


def _resolve_from_logits(discriminator, from_logits):
    return (not _ends_with_sigmoid(discriminator)) if from_logits is None else bool(from_logits)


class DCGANTrainer(GANTrainer):
    """DCGAN (Radford et al. 2016); see the module docstring.

    Args:
        generator: maps (N, latent_dim) noise to images.
        discriminator: maps images to (N, 1) logits or probabilities.
        latent_dim: noise size (100 in the paper); default: the generator's input.
        from_logits: whether D outputs logits (None: detect).
        seed: seed of the noise.
    """

    _model_names = ("generator", "discriminator")
    _optimizer_targets = {"g_optimizer": ("generator",), "d_optimizer": ("discriminator",)}
    _default_optimizers = {"g_optimizer": (2e-4, 0.5), "d_optimizer": (2e-4, 0.5)}
    _loss_names = ("d_loss", "g_loss")

    def __init__(self, generator, discriminator, latent_dim=None, from_logits=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim or generator.input_shape[-1])
        self.from_logits = _resolve_from_logits(discriminator, from_logits)

    def sample(self, count):
        """`count` generated images from fresh noise (inference mode)."""
        z = keras.random.normal((count, self.latent_dim), seed=self.seed_generator)
        return self.generator(z, training=False)

    def train_step(self, data):
        import tensorflow as tf

        real = data[0] if isinstance(data, (tuple, list)) else data
        z = keras.random.normal((ops.shape(real)[0], self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(z, training=True)
            real_out = self.discriminator(real, training=True)
            fake_out = self.discriminator(fake, training=True)
            d_loss = _bce(1.0, real_out, self.from_logits) + _bce(0.0, fake_out, self.from_logits)
            g_loss = _bce(1.0, fake_out, self.from_logits)
        self._update(d_tape, d_loss, "d_optimizer")
        self._update(g_tape, g_loss, "g_optimizer")
        return self._log(d_loss=d_loss, g_loss=g_loss)


class SRGANTrainer(GANTrainer):
    """SRGAN (Ledig et al. 2017); see the module docstring.

    Args:
        generator: LR -> SR images.
        discriminator: HR/SR images -> (N, 1).
        content_loss: callable (hr, sr) -> scalar, e.g.
            ``training.perceptual.VGGContentLoss(path, preset="srgan")``; None: pixel MSE.
        adversarial_weight: weight of G's adversarial term (1e-3).
        from_logits: whether D outputs logits (None: detect).
    """

    _model_names = ("generator", "discriminator")
    _optimizer_targets = {"g_optimizer": ("generator",), "d_optimizer": ("discriminator",)}
    _default_optimizers = {"g_optimizer": (1e-4, 0.9), "d_optimizer": (1e-4, 0.9)}
    _loss_names = ("d_loss", "g_loss", "content_loss", "adversarial_loss")

    def __init__(self, generator, discriminator, content_loss=None, adversarial_weight=1e-3, from_logits=None,
                 seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.content_loss = content_loss or (lambda hr, sr: ops.mean(ops.square(hr - sr)))
        self.adversarial_weight = float(adversarial_weight)
        self.from_logits = _resolve_from_logits(discriminator, from_logits)

    def train_step(self, data):
        import tensorflow as tf

        lr, hr = data[0], data[1]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = self.generator(lr, training=True)
            real_out = self.discriminator(hr, training=True)
            fake_out = self.discriminator(sr, training=True)
            d_loss = _bce(1.0, real_out, self.from_logits) + _bce(0.0, fake_out, self.from_logits)
            content = self.content_loss(hr, sr)
            adversarial = _bce(1.0, fake_out, self.from_logits)
            g_loss = content + self.adversarial_weight * adversarial
        self._update(d_tape, d_loss, "d_optimizer")
        self._update(g_tape, g_loss, "g_optimizer")
        return self._log(d_loss=d_loss, g_loss=g_loss, content_loss=content, adversarial_loss=adversarial)


def pretrain_generator(generator, data, epochs, learning_rate=1e-4, loss="mse", **fit_kwargs):
    """SRGAN's optional first phase: the generator alone on pixel MSE (SRResNet), Adam(lr, 0.9).

    Runs on any backend (an ordinary compile/fit); compiles `generator`.

    Args:
        generator: the SR generator.
        data: (lr, hr) pairs as `fit` takes them (a dataset, or a tuple of arrays).
        epochs: number of epochs.
        learning_rate: Adam's learning rate (1e-4 in the paper).
        loss: pixel loss ("mse").
        **fit_kwargs: passed to `fit` (batch_size, callbacks, ...).

    Returns:
        The Keras `History`.
    """
    generator.compile(keras.optimizers.Adam(learning_rate, beta_1=0.9), loss=loss)
    build_optimizer(generator)
    if isinstance(data, tuple) and len(data) == 2:
        return generator.fit(data[0], data[1], epochs=epochs, **fit_kwargs)
    return generator.fit(data, epochs=epochs, **fit_kwargs)


def _discriminate(discriminator, condition, image, training):
    if len(discriminator.inputs) == 2:
        return discriminator([condition, image], training=training)
    return discriminator(ops.concatenate([condition, image], axis=-1), training=training)


class Pix2PixTrainer(GANTrainer):
    """pix2pix (Isola et al. 2017); see the module docstring.

    Args:
        generator: input -> output image (U-Net).
        discriminator: conditional PatchGAN: ``[input, image]`` or their
            channel concatenation -> patch scores.
        l1_weight: lambda of the L1 term (100).
        from_logits: whether D outputs logits (None: detect).
    """

    _model_names = ("generator", "discriminator")
    _optimizer_targets = {"g_optimizer": ("generator",), "d_optimizer": ("discriminator",)}
    _default_optimizers = {"g_optimizer": (2e-4, 0.5), "d_optimizer": (2e-4, 0.5)}
    _loss_names = ("d_loss", "g_loss", "g_gan_loss", "l1_loss")

    def __init__(self, generator, discriminator, l1_weight=100.0, from_logits=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.from_logits = _resolve_from_logits(discriminator, from_logits)

    def train_step(self, data):
        import tensorflow as tf

        source, target = data[0], data[1]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(source, training=True)
            real_out = _discriminate(self.discriminator, source, target, True)
            fake_out = _discriminate(self.discriminator, source, fake, True)
            gan = _bce(1.0, fake_out, self.from_logits)
            l1 = _l1(target, fake)
            g_loss = gan + self.l1_weight * l1
            d_loss = 0.5 * (_bce(1.0, real_out, self.from_logits) + _bce(0.0, fake_out, self.from_logits))
        self._update(d_tape, d_loss, "d_optimizer")
        self._update(g_tape, g_loss, "g_optimizer")
        return self._log(d_loss=d_loss, g_loss=g_loss, g_gan_loss=gan, l1_loss=l1)


class CycleGANTrainer(GANTrainer):
    """CycleGAN (Zhu et al. 2017); see the module docstring.

    Args:
        generator_g: X -> Y.
        generator_f: Y -> X.
        discriminator_x: scores X images (real X vs F(y)).
        discriminator_y: scores Y images (real Y vs G(x)).
        cycle_weight: lambda (10).
        identity_weight: weight of the identity loss (0.5 * lambda = 5; 0 turns it off).
    """

    _model_names = ("generator_g", "generator_f", "discriminator_x", "discriminator_y")
    _optimizer_targets = {
        "g_optimizer": ("generator_g", "generator_f"),
        "d_optimizer": ("discriminator_x", "discriminator_y"),
    }
    _default_optimizers = {"g_optimizer": (2e-4, 0.5), "d_optimizer": (2e-4, 0.5)}
    _loss_names = ("d_loss", "g_loss", "cycle_loss", "identity_loss")

    def __init__(self, generator_g, generator_f, discriminator_x, discriminator_y, cycle_weight=10.0,
                 identity_weight=5.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator_g, self.generator_f = generator_g, generator_f
        self.discriminator_x, self.discriminator_y = discriminator_x, discriminator_y
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)

    def train_step(self, data):
        import tensorflow as tf

        real_x, real_y = data[0], data[1]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake_y = self.generator_g(real_x, training=True)
            fake_x = self.generator_f(real_y, training=True)
            cycled_x = self.generator_f(fake_y, training=True)
            cycled_y = self.generator_g(fake_x, training=True)
            cycle = _l1(real_x, cycled_x) + _l1(real_y, cycled_y)
            if self.identity_weight:
                identity = _l1(real_y, self.generator_g(real_y, training=True)) + \
                    _l1(real_x, self.generator_f(real_x, training=True))
            else:
                identity = ops.zeros(())
            dx_real = self.discriminator_x(real_x, training=True)
            dx_fake = self.discriminator_x(fake_x, training=True)
            dy_real = self.discriminator_y(real_y, training=True)
            dy_fake = self.discriminator_y(fake_y, training=True)
            adversarial = _mse_to(1.0, dy_fake) + _mse_to(1.0, dx_fake)
            g_loss = adversarial + self.cycle_weight * cycle + self.identity_weight * identity
            d_loss = 0.5 * (_mse_to(1.0, dx_real) + _mse_to(0.0, dx_fake)) + \
                0.5 * (_mse_to(1.0, dy_real) + _mse_to(0.0, dy_fake))
        self._update(d_tape, d_loss, "d_optimizer")
        self._update(g_tape, g_loss, "g_optimizer")
        return self._log(d_loss=d_loss, g_loss=g_loss, cycle_loss=cycle, identity_loss=identity)
