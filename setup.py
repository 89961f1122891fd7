"""kerasnets: classic convolutional networks in Keras 3, with weight importers and training."""

from setuptools import find_packages, setup

TEST = ["pytest>=8.0", "pytest-xdist>=3.5", "pytest-timeout>=2.3", "scikit-learn>=1.5", "scikit-image>=0.24", "matplotlib>=3.8", "pillow>=10.0",
        "hypothesis>=6.100", "pycocotools>=2.0.8", "tensorboard>=2.20", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
        # the format's own implementation, the tests' reference (0.8: numpy bfloat16 through ml_dtypes)
        "safetensors>=0.8",
        "scipy>=1.13"]  # scipy.io's MATLAB reader and writer: the .mat tests' oracle (no library module imports scipy)

setup(
    name="kerasnets",
    version="0.1.0",
    description="Classic CNNs (LeNet to MobileNetV3, FSRCNN to Ucolor) as Keras 3 builders, "
    "with exact weight importers from MatConvNet, numpy, PyTorch and Keras files.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["kerasnets", "kerasnets.*", "weights_io", "weights_io.*", "training", "training.*"]),
    package_data={"kerasnets": ["data/*"]},
    install_requires=[
        "tensorflow>=2.21",
        "keras>=3.15",
        "numpy>=2.1",  # np.reshape(copy=False): weights_io.transfer.reshape_view
        "h5py>=3.11",
        "google-crc32c>=1.5",  # TensorFlow checkpoints' block and tensor checksums, without TensorFlow
        "scikit-learn>=1.5",  # ships the digits data set of the default training job
        "pillow>=10.0",  # image decoding in training (folders, FSRCNN preparation, predict)
        "huggingface_hub>=0.23",  # timm presets: hf_hub_download(..., endpoint=) of model.safetensors
    ],
    extras_require={
        "test": TEST,
        # Cadene: SE-ResNet, BN-Inception, Inception v4; tf-keras writes Keras 2 files as keras.applications' hosted ones
        "oracle": ["torch==2.14.1", "torchvision==0.29.1", "pretrainedmodels==0.7.4", "tf-keras==2.21.*",
                   "timm==1.0.31", "safetensors>=0.8",  # timm: tests/oracle/test_timm.py
                   "tf-slim==1.1.0",  # TF-slim's nets: tests/oracle/test_slim_*.py
                   "opencv-python-headless==4.14.0.94"],  # Caffe nets (OpenCV 5 dropped them): tests/oracle/test_caffe_opencv.py
        "backends": ["jax==0.10.2", "jaxlib==0.10.2"],  # + torch from "oracle": tests/backends
        # keras' ONNX export goes through tf2onnx; the TFLite check uses tf.lite's interpreter
        "export": ["onnx>=1.17", "onnxruntime>=1.20", "tf2onnx>=1.17"],
        "gpu": ["tensorflow[and-cuda]>=2.21"],  # NVIDIA GPUs: TensorFlow's CUDA/cuDNN wheels
        "notebooks": ["matplotlib>=3.8", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "jupyter"],
    },
    entry_points={"console_scripts": ["kerasnets=training.cli:main"]},
)
