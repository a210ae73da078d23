"""ka_tf: knowledge amalgamation for dense prediction in TensorFlow/Keras.

Trains one lightweight multi-task student from several frozen single-task
teachers on unlabelled images ("Student Becoming the Master", CVPR 2019).
"""

__version__ = "0.1.0"
