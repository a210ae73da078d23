"""Each phase builds its own distillation losses under its gin scope."""

import gin

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import distillation_losses
from ka_tf.losses.semseg_losses import HardTargetCrossEntropy, SoftTargetKLDivergence
from tests.helpers import REPO_ROOT


def test_demo_gin_uses_kl_block_wise_and_hard_ce_in_fine_tuning():
    gin.clear_config()
    config.parse_gin_config(["gin/demo.gin"], search_paths=[REPO_ROOT])
    try:
        with gin.config_scope("blockwise"):
            blockwise = distillation_losses(("semseg", "depth"))
        with gin.config_scope("finetune"):
            finetune = distillation_losses(("semseg", "depth"))
    finally:
        gin.clear_config()
    assert isinstance(blockwise["semseg"], SoftTargetKLDivergence)
    assert blockwise["semseg"].temperature == 2.0
    assert isinstance(finetune["semseg"], HardTargetCrossEntropy)
    assert type(blockwise["depth"]) is type(finetune["depth"])


def test_losses_are_a_dict_by_task_with_defaults_and_checked_names():
    import pytest

    from ka_tf.errors import ConfigError
    from ka_tf.losses.depth_losses import DepthL1
    from ka_tf.losses.normals_losses import CosineDistance

    built = distillation_losses(
        ("semseg", "depth", "normals"),
        losses={"semseg": "kl"},
        loss_options={"semseg.kl": {"temperature": 4.0}},
    )
    assert isinstance(built["semseg"], SoftTargetKLDivergence)
    assert built["semseg"].temperature == 4.0
    # Tasks not named get their task's default loss.
    assert isinstance(built["depth"], DepthL1) and isinstance(built["normals"], CosineDistance)
    with pytest.raises(ConfigError, match=r"unknown depth loss .*depth='l2'.*log_l1"):
        distillation_losses(("depth",), losses={"depth": "l2"})
    with pytest.raises(ConfigError, match=r"unknown task.*'edges'"):
        distillation_losses(("depth",), losses={"edges": "l1"})
    with pytest.raises(ConfigError, match=r"'semseg.kll' names no loss"):
        distillation_losses(("semseg",), loss_options={"semseg.kll": {}})


def test_class_balance_is_refused_where_no_cached_targets_measure_it():
    import pytest

    from ka_tf.amalgamation.run import _check_class_balance
    from ka_tf.errors import ConfigError

    plain = distillation_losses(("semseg", "depth"), losses={"semseg": "hard_ce"})
    balanced = distillation_losses(
        ("semseg", "depth"),
        losses={"semseg": "hard_ce"},
        loss_options={"semseg.hard_ce": {"class_balance": 0.5}},
    )
    _check_class_balance(plain, balanced, cache_targets=True)  # the supported place
    _check_class_balance(plain, plain, cache_targets=False)
    with pytest.raises(ConfigError, match=r"block-wise phase's \['semseg'\].*finetune/"):
        _check_class_balance(balanced, plain, cache_targets=True)
    with pytest.raises(ConfigError, match=r"cache_targets = True, or class_balance = 0"):
        _check_class_balance(plain, balanced, cache_targets=False)


def test_finetune_task_weights_are_checked_against_the_run_s_tasks():
    import pytest

    from ka_tf.amalgamation.run import _check_task_weights
    from ka_tf.errors import ConfigError

    tasks = ("semseg", "depth")
    assert _check_task_weights(None, tasks) == {"semseg": 1.0, "depth": 1.0}
    assert _check_task_weights({"semseg": 0.5}, tasks) == {"semseg": 0.5, "depth": 1.0}
    # A recipe's weights also serve its single-teacher controls.
    assert _check_task_weights({"semseg": 0.5}, ("depth",)) == {"depth": 1.0}
    with pytest.raises(ConfigError, match=r"unknown tasks \['edges'\]"):
        _check_task_weights({"edges": 2.0}, tasks)
    with pytest.raises(ConfigError, match=r"finetune_task_weights\['depth'\] must be > 0"):
        _check_task_weights({"depth": 0.0}, tasks)
