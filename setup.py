"""Installs ka_tf: knowledge amalgamation for dense prediction in TensorFlow/Keras.

Exact versions live in ``requirements/constraints.txt`` (the whole resolved
environment, measured on the CI machine); ``install_requires`` names the direct
dependencies with the same pins so that ``pip install .`` alone is also exact.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "gin-config==0.5.0",
    "absl-py==2.5.1",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "ai-edge-litert==2.3.0",
    "pybullet==3.2.7",
    "h5py==3.14.0",
    "scipy==1.17.1",
    "pillow==13.0.0",
    "numpy==2.4.6",
    "tqdm==4.70.1",
    # tf.summary (TensorBoard logs) needs the tensorboard package since TF 2.16.
    "tensorboard==2.20.0",
]

EXTRAS_REQUIRE = {
    # Test and lint tools.
    "dev": ["pytest==9.2.0", "ruff==0.17.6"],
    # Reading PyTorch teacher checkpoints (tools/convert_teacher.py) and the
    # PyTorch reference benchmark. Nothing else in ka_tf imports torch.
    "convert": ["torch==2.13.0"],
    # NVIDIA GPUs: pulls the CUDA/cuDNN wheels that TensorFlow was built against.
    "gpu": ["tensorflow[and-cuda]==2.21.0"],
}

setup(
    name="ka_tf",
    version="0.1.0",
    description=(
        "Knowledge amalgamation for dense prediction (Student Becoming the Master, "
        "CVPR 2019) in TensorFlow/Keras"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ka_tf", "ka_tf.*"]),
    package_data={"ka_tf": ["py.typed"]},
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license="Apache-2.0",
)
