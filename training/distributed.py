"""A training loop for `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3's `Model.fit` fails under MultiWorkerMirroredStrategy ("Attempt to
convert a value (PerReplica...) to a Tensor"; keras-team/keras#20585, open),
while a plain `strategy.run` step works. `distributed_fit` is that step in an
epoch loop that drives the same Keras callbacks `fit` would (checkpoints, CSV
log, resume), so `training.fit(..., strategy="multiworker")` behaves like
the single-process run. It logs `loss` and `accuracy` (and their `val_`
twins); other compiled metrics are not computed on this path.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _per_example_loss(model):
    loss = model.loss
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # per-example values, before the Loss's own reduction
    if callable(loss):
        return loss
    raise ValueError(f"distributed_fit needs a single compiled loss. Received: {model.loss!r}")


def distributed_fit(model, train, val, *, epochs, strategy, callbacks=(), initial_epoch=0):
    """Trains `model` (compiled in `strategy.scope()`) on tf.data `train` for `epochs`.

    Returns:
        a `keras.callbacks.History` whose `.history` holds the per-epoch logs.
    """
    per_example = _per_example_loss(model)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    def batch_sums(x, y, pred):
        losses = tf.cast(per_example(y, pred), tf.float32)
        labels = tf.cast(tf.reshape(y, [-1]), tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(pred, axis=-1), labels), tf.float32)
        return tf.reduce_sum(losses), tf.reduce_sum(correct), tf.cast(tf.shape(labels)[0], tf.float32)

    @tf.function
    def train_step(batch):
        def replica(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                loss_sum, correct, count = batch_sums(x, y, pred)
                global_batch = count * replicas
                loss = loss_sum / global_batch
                if model.losses:
                    loss += tf.add_n(model.losses) / replicas
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply(grads, model.trainable_variables)
            return loss_sum, correct, count

        return [strategy.reduce("SUM", v, axis=None) for v in strategy.run(replica, args=batch)]

    @tf.function
    def eval_step(batch):
        def replica(x, y):
            return batch_sums(x, y, model(x, training=False))

        return [strategy.reduce("SUM", v, axis=None) for v in strategy.run(replica, args=batch)]

    def run_epoch(step, dataset):
        totals = [0.0, 0.0, 0.0]
        for batch in dataset:
            totals = [t + float(v) for t, v in zip(totals, step(batch))]
        loss_sum, correct, count = totals
        return {"loss": loss_sum / max(count, 1.0), "accuracy": correct / max(count, 1.0)}

    train_dist = strategy.experimental_distribute_dataset(train)
    val_dist = strategy.experimental_distribute_dataset(val) if val is not None else None
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(list(callbacks) + [history], model=model, epochs=epochs)
    model.stop_training = False
    callback_list.on_train_begin()
    start = max(initial_epoch, int(getattr(model, "_initial_epoch", None) or 0))
    logs = {}
    for epoch in range(start, epochs):
        callback_list.on_epoch_begin(epoch)
        logs = run_epoch(train_step, train_dist)
        if val_dist is not None:
            logs.update({f"val_{k}": v for k, v in run_epoch(eval_step, val_dist).items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
