"""ka_tf: knowledge amalgamation for dense prediction in TensorFlow/Keras.

Trains one lightweight multi-task student from several frozen single-task
teachers on unlabelled images ("Student Becoming the Master", CVPR 2019).
"""

import os as _os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512
# class features. On an AVX2 CPU they make the demo's SegNet training step ~30%
# faster and inference ~25% (BUILD.md, "Performance fixes, measured"), so ka_tf asks
# for them unless the user set the variable. It takes effect only when ka_tf is
# imported before TensorFlow (every tool does); ``distribute.onednn_enabled`` reports it.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
