"""How much of a small-batch Keras forward is TF2 function-call overhead, not ops.

Usage:
    python benchmarks/call_overhead.py [--model=teacher.keras] [--batch=1] [--repeats=9]

Times the same eval forward three ways, alternating in one process: the
``tf.function`` call ka_tf uses (``tools/benchmark.py``'s ``keras`` row), that graph
with its variables frozen into constants, and the frozen graph run by a TF1
``Session``. The ops are the same in all three; the differences are the call paths.
Without ``--model`` a fresh demo-scale semseg SegNet is timed.
"""

from __future__ import annotations

import json
import time

from absl import app, flags

from ka_tf import path_flags

FLAGS = flags.FLAGS
path_flags.define_path("model", None, "A ka_tf .keras model (default: a fresh demo SegNet).")
flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
flags.DEFINE_list("image_size", ["64", "128"], "H,W of the input.")
flags.DEFINE_integer("repeats", 9, "Timed runs per path, alternating.", lower_bound=1)
flags.DEFINE_integer("calls", 20, "Calls per timed run.", lower_bound=1)


def main(argv: list[str]) -> int:
    del argv
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    import ka_tf  # noqa: F401  (oneDNN on, as in every ka_tf tool)
    from ka_tf.evaluation import load_model_file
    from ka_tf.models import SegNet

    if FLAGS.model:
        model = load_model_file(FLAGS.model)
    else:
        keras.utils.set_random_seed(0)
        model = SegNet("semseg", num_classes=19, width_multiplier=0.125)
    shape = [FLAGS.batch, *(int(v) for v in FLAGS.image_size), 3]
    images = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    x = tf.constant(images)
    first = model.tasks[0]
    forward = tf.function(lambda t: model(t, training=False)[first], autograph=False)
    frozen = convert_variables_to_constants_v2(
        forward.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    )
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    session = tf.compat.v1.Session(graph=graph)
    feed, fetch = frozen.inputs[0].name, frozen.outputs[0].name
    paths = {
        "tf_function": lambda: forward(x).numpy(),
        "frozen_function": lambda: frozen(x)[0].numpy(),
        "tf1_session": lambda: session.run(fetch, {feed: images}),
    }
    reference = paths["tf_function"]()
    for name, call in paths.items():
        np.testing.assert_allclose(call(), reference, rtol=1e-4, atol=1e-4, err_msg=name)
        call()
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(FLAGS.repeats):
        for name, call in paths.items():
            started = time.perf_counter()
            for _ in range(FLAGS.calls):
                call()
            runs[name].append(1000.0 * (time.perf_counter() - started) / FLAGS.calls)
    result = {
        name: {"median_ms": float(np.median(v)), "min_ms": float(min(v))}
        for name, v in runs.items()
    }
    print(json.dumps({"batch": FLAGS.batch, "latency": result}, indent=1))
    return 0


if __name__ == "__main__":
    app.run(main)
