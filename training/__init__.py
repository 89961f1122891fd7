"""Training utilities: data, augmentation, fit, transfer learning, metrics.

Uses kerasnets and weights_io (never the reverse); may use tf.data.
"""
