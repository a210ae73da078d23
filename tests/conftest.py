"""Test session set-up: two logical CPU devices (for MirroredStrategy tests) and markers."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Recipes that cache teacher targets (gin/street_zoo.gin) and every amalgamation run's
# teacher scores write them here, not into the user's ~/.cache, in this process and
# every tool it runs. The process that makes a folder (pytest's controller; xdist
# workers inherit its environment) deletes it when the session ends.
if "KA_TF_TARGET_CACHE" not in os.environ:
    os.environ["KA_TF_TARGET_CACHE"] = tempfile.mkdtemp(prefix="ka_tf_test_targets_")
    atexit.register(shutil.rmtree, os.environ["KA_TF_TARGET_CACHE"], ignore_errors=True)
if "KA_TF_SCORE_CACHE" not in os.environ:
    os.environ["KA_TF_SCORE_CACHE"] = tempfile.mkdtemp(prefix="ka_tf_test_scores_")
    atexit.register(shutil.rmtree, os.environ["KA_TF_SCORE_CACHE"], ignore_errors=True)

import pytest
import tensorflow as tf

# Split the CPU into two logical devices before TensorFlow initialises its
# runtime, so that MirroredStrategy can run with two replicas on one CPU.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption(
        "--run-extended",
        action="store_true",
        help="also run the slow checks beyond CI's time budget (make test-extended)",
    )
    parser.addoption(
        "--run-matrix",
        action="store_true",
        help="also run the strategy-matrix cells outside CI's subset (make test-matrix)",
    )


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    skip_matrix = pytest.mark.skip(reason="strategy-matrix cell: run with make test-matrix")
    skip_extended = pytest.mark.skip(reason="beyond CI's time budget: run with make test-extended")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        elif "matrix" in item.keywords and not config.getoption("--run-matrix"):
            item.add_marker(skip_matrix)
        elif "extended" in item.keywords and not config.getoption("--run-extended"):
            item.add_marker(skip_extended)


@pytest.fixture(autouse=True)
def _reset_global_state():
    """Each test starts with float32, a fresh gin config, a clean Keras session and the
    task registry as it found it (a recipe's declare_tasks registers its binary tasks)."""
    import gin
    import keras

    from ka_tf.tasks import task_names, unregister_task

    gin.clear_config()
    keras.mixed_precision.set_global_policy("float32")
    tasks_before = set(task_names())
    yield
    for name in set(task_names()) - tasks_before:
        unregister_task(name)
    gin.clear_config()
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
