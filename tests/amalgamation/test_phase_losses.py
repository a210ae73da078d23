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
