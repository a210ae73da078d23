"""Installs ka_tf: knowledge amalgamation for dense prediction in TensorFlow/Keras.

``install_requires`` and the extras state compatible ranges, so that ka_tf installs
beside other packages (a notebook's numpy, say). The exact, tested environment is
``requirements/constraints.txt``; ``make`` installs through it (``pip install -c``).

Extras, by need: ``synth`` renders the synthetic benchmark (pybullet; `make demo`),
``export`` writes and checks TFLite and ONNX files, ``convert`` reads PyTorch teachers
and ``bench`` runs the PyTorch reference benchmark (torch), ``real`` decodes the
street video of ``make real-teachers`` (OpenCV), ``gpu`` pulls TensorFlow's
CUDA wheels, ``dev`` the test and lint tools. A command that needs a missing extra
says which one to install (``ka_tf/extras.py``).

The wheel carries the gin recipes and the teacher zoo inside the package
(``ka_tf/_shipped/{gin,zoo}``, copied by ``build_py`` below), so the console scripts
(``ka-demo``, ``ka-train``, ...) work outside a checkout (``ka_tf/resources.py``).
"""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = ("gin", "zoo")  # top-level folders copied into the package at build time

INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "gin-config>=0.5,<0.6",
    "absl-py>=2.1,<3",
    "h5py>=3.10,<4",
    "scipy>=1.11,<2",
    "pillow>=10.0,<14",
    "numpy>=1.26,<3",
    "tqdm>=4.60,<5",
    # tf.summary (TensorBoard logs) needs the tensorboard package since TF 2.16.
    "tensorboard>=2.20,<3",
]

TORCH = "torch>=2.2,<3"
EXTRAS_REQUIRE = {
    # Rendering the synthetic street and indoor benchmark (`make demo`).
    "synth": ["pybullet>=3.2.5,<4"],
    # TFLite and ONNX export and their parity checks (tools/export.py).
    "export": [
        "tf2onnx>=1.16,<2",
        "onnx>=1.16,<2",
        "onnxruntime>=1.18,<2",
        "ai-edge-litert>=2.0,<3",
    ],
    # Reading PyTorch teacher checkpoints (tools/convert_teacher.py).
    "convert": [TORCH],
    # The PyTorch reference in tools/benchmark.py and benchmarks/.
    "bench": [TORCH],
    # Decoding the street video into frames at fetch time (`make real-teachers`).
    "real": ["opencv-python-headless>=4.8,<6"],
    # NVIDIA GPUs: pulls the CUDA/cuDNN wheels that TensorFlow was built against.
    "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
    # Test and lint tools (the test suite also needs synth, export, convert and real).
    "dev": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "ruff==0.17.6"],
}

CONSOLE_SCRIPTS = [
    f"ka-{name.replace('_', '-')}=ka_tf.commands.{name}:run"
    for name in (
        "train",
        "train_teacher",
        "demo",
        "study",
        "evaluate",
        "predict",
        "export",
        "make_synth",
        "inspect_dataset",
        "zoo",
        "env_info",
        "fetch_real",
        "convert_encoder",
    )
]


class BuildWithShippedFiles(build_py):
    """Copies gin/ and zoo/ into the built package as ``ka_tf/_shipped/``."""

    def run(self) -> None:
        super().run()
        for folder in SHIPPED:
            source = os.path.join(HERE, folder)
            target = os.path.join(self.build_lib, "ka_tf", "_shipped", folder)
            if os.path.isdir(target):
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


setup(
    name="ka_tf",
    version="0.1.0",
    description=(
        "Knowledge amalgamation for dense prediction (Student Becoming the Master, "
        "CVPR 2019) in TensorFlow/Keras"
    ),
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ka_tf", "ka_tf.*"]),
    package_data={"ka_tf": ["py.typed"]},
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    cmdclass={"build_py": BuildWithShippedFiles},
    license="Apache-2.0",
)
