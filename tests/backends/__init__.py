"""Cross-backend checks: every registered model gives TensorFlow's outputs on JAX and torch.

The core suite runs under TensorFlow; `worker.py` is started once per other
backend (KERAS_BACKEND=jax / torch) in a subprocess that builds every model,
loads the weights the parent saved and writes its outputs back.
"""
