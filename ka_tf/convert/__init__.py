"""Converters from other frameworks' checkpoints into ka_tf Keras models.

Only reading a PyTorch file needs torch (``pip install 'ka_tf[convert]'``); importing
this package does not.
"""

from ka_tf.convert.torch_segnet import (
    ARCHS,
    convert_checkpoint,
    convert_state_dict,
    expected_keys,
    extract_state_dict,
    guess_arch,
    load_checkpoint,
    parse_arch,
    torch_parity,
)

__all__ = [
    "ARCHS",
    "convert_checkpoint",
    "convert_state_dict",
    "expected_keys",
    "extract_state_dict",
    "guess_arch",
    "load_checkpoint",
    "parse_arch",
    "torch_parity",
]
