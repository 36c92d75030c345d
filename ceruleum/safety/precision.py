"""The precision the content classifier's MiniLM runs in, as configured or chosen for the CPU.

bfloat16 where the CPU multiplies it natively (AVX512-BF16 or AMX): as fast as it gets there, and
what `eval` was read in. Elsewhere PyTorch emulates bfloat16, slower than float32, and the choice
falls to `WITHOUT_NATIVE_BFLOAT16` (docs/safety.md, "Precision").
"""

from __future__ import annotations

from typing import Literal, get_args

from ceruleum.engine.sentence_models import Precision, bfloat16_is_fast

PrecisionSetting = Literal["auto", "float32", "bfloat16", "int8"]
PRECISION_SETTINGS: tuple[str, ...] = get_args(PrecisionSetting)

WITHOUT_NATIVE_BFLOAT16: Precision = "float32"


def classifier_precision(setting: PrecisionSetting = "auto") -> Precision:
    if setting != "auto":
        return setting
    return "bfloat16" if bfloat16_is_fast() else WITHOUT_NATIVE_BFLOAT16
