"""The embedded synthetic benchmark: procedural street and indoor scenes.

Modules, one job each:

- :mod:`.config` — :func:`scene_config`, the one gin-bindable factory of all variation.
- :mod:`.classes` — class ids (Cityscapes 19 / NYUv2 13) and palettes.
- :mod:`.seeds` — per-frame seeds, disjoint across splits.
- :mod:`.primitives` — the plain-data scene description (solids, camera, light).
- :mod:`.street`, :mod:`.indoor` — the scene layouts.
- :mod:`.textures` — procedural textures and ``pybullet_data`` images.
- :mod:`.meshes` — triangle meshes of the primitives.
- :mod:`.camera` — depth-buffer conversion and normals from depth.
- :mod:`.sky` — the street sky.
- :mod:`.renderer` — pybullet TinyRenderer rendering of a layout.
- :mod:`.generate` — parallel rendering of a split into TFRecords.

Read the data with ``ka_tf.data.load("synth_street", data_dir, split)``; see
:mod:`ka_tf.data.synth_dataset`.
"""

from ka_tf.data.synth.config import SCENES, SceneConfig, scene_config
from ka_tf.data.synth.seeds import SPLITS

__all__ = ["SCENES", "SPLITS", "SceneConfig", "scene_config"]
