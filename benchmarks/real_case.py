"""The real case's speed: the light student vs its two real teachers run in turn.

Usage:
    python benchmarks/real_case.py --student=runs/real/student.keras \
        --out=runs/real/benchmark.json [--repeats=7]

Batch 1, every model in its own runtime: the student in Keras (a ``tf.function``,
TensorFlow's default threads) and as TFLite float32 and full int8 (exported here with
ka_tf's exporter, int8 calibrated on held-out real frames; LiteRT with XNNPACK, 1
thread); MediaPipe's selfie segmentation in LiteRT (1 thread) at its 256×256 input;
U²-Net-p in onnxruntime (1 intra-op thread) at its 320×320 input. The student runs at
the recipe's 256×320. Timed runs alternate between the models (load from other
processes hits all alike); latency is per image, median/min/max over ``--repeats``.
Also: parameters, file sizes. Writes the JSON and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from absl import app, flags

from ka_tf import path_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
path_flags.define_path(
    "student", None, "The trained student (.keras) of gin/real/person_saliency.gin."
)
path_flags.define_path("out", None, "The JSON file to write.")
flags.DEFINE_integer("repeats", 7, "Timed runs per model, alternating.", lower_bound=1)
flags.DEFINE_float("min_time_s", 0.5, "Minimum length of one timed run.")
flags.DEFINE_list("image_size", ["256", "320"], "H,W of the student's input.")
flags.mark_flags_as_required(["student", "out"])


def _photos(size: tuple[int, int], count: int):
    import numpy as np
    from PIL import Image

    from ka_tf.real import assets

    root = os.path.join(assets.real_asset("photos"), "test", "vtest")
    names = sorted(os.listdir(root))[:count]
    return np.stack(
        [
            np.asarray(
                Image.open(os.path.join(root, n)).convert("RGB").resize(size[::-1]), np.float32
            )
            for n in names
        ]
    )


def _litert(path: str):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter.invoke


def _onnx(path: str):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }
    return lambda: session.run(None, feed)


def main(argv: list[str]) -> int:
    del argv
    import tensorflow as tf

    from benchmarks.harness import time_interleaved
    from ka_tf.evaluation import load_model_file
    from ka_tf.export import export_model
    from ka_tf.real import assets
    from ka_tf.teachers import load_teacher, teacher_spec

    size = tuple(int(v) for v in FLAGS.image_size)
    student = load_model_file(FLAGS.student)
    photos = _photos(size, 12)
    export_dir = os.path.join(tempfile.mkdtemp(prefix="ka_real_bench_"), "export")
    export_model(
        student,
        export_dir,
        formats=["tflite"],
        tflite_quantizations=["none", "int8"],
        image_size=size,
        representative_images=list(photos[:8]),
        parity_images=photos[8:],
    )
    selfie, u2netp = assets.real_asset("selfie_segmentation"), assets.real_asset("u2netp")
    forward = tf.function(lambda x: student(x, training=False))
    one = tf.constant(photos[:1])
    calls = {
        "student keras": lambda: {k: v.numpy() for k, v in forward(one).items()},
        "student tflite fp32": _litert(os.path.join(export_dir, "student.tflite")),
        "student tflite int8": _litert(os.path.join(export_dir, "student_int8.tflite")),
        "person teacher (tflite)": _litert(selfie),
        "salient teacher (onnx)": _onnx(u2netp),
    }
    timed = time_interleaved(calls, 1, FLAGS.repeats, FLAGS.min_time_s, warmup=3)
    latency = {name: entry["latency_ms"] for name, entry in timed.items()}
    teachers_ms = (
        latency["person teacher (tflite)"]["median"] + latency["salient teacher (onnx)"]["median"]
    )
    params = {
        "student": int(student.count_params()),
        "person teacher": int(
            load_teacher(
                teacher_spec(selfie, {"person": "probability"}, input_size=(256, 256))
            ).count_params()
        ),
        "salient teacher": int(
            load_teacher(
                teacher_spec(
                    u2netp,
                    {"salient": {"form": "min_max", "output": 0}},
                    input_size=(320, 320),
                    layout="nchw",
                )
            ).count_params()
        ),
    }
    sizes = {
        "student tflite fp32": os.path.getsize(os.path.join(export_dir, "student.tflite")),
        "student tflite int8": os.path.getsize(os.path.join(export_dir, "student_int8.tflite")),
        "person teacher (tflite)": os.path.getsize(selfie),
        "salient teacher (onnx)": os.path.getsize(u2netp),
    }
    result = {
        "student": os.path.abspath(FLAGS.student),
        "image_size": {"student": list(size), "person": [256, 256], "salient": [320, 320]},
        "threads": {"keras": "TensorFlow default", "tflite": 1, "onnxruntime": 1},
        "latency_ms": latency,
        "teachers_in_turn_ms": teachers_ms,
        "speedup_vs_teachers_in_turn": {
            name: teachers_ms / latency[name]["median"] for name in latency if "student" in name
        },
        "params": params,
        "file_bytes": sizes,
    }
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    print("| model (runtime) | latency, batch 1: median (min–max) | file |")
    print("| --- | ---: | ---: |")
    for name, value in latency.items():
        size_mb = f"{sizes[name] / 1e6:.2f} MB" if name in sizes else ""
        print(
            f"| {name} | {value['median']:.1f} ms ({value['min']:.1f}–{value['max']:.1f}) "
            f"| {size_mb} |"
        )
    print(
        f"\nteachers in turn: {teachers_ms:.1f} ms; speed-up of the student: "
        + ", ".join(f"{n} {v:.2f}×" for n, v in result["speedup_vs_teachers_in_turn"].items())
    )
    print(f"params: {params}")
    return 0


if __name__ == "__main__":
    app.run(main)
