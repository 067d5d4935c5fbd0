"""Architectures and input sizes (torch-free, so the CLI can show them without loading torch).

Real checkpoints default to MobileNetV3-Large at 224 px: on two CPU cores full-classify (two
forward passes) stays inside the 150 ms target, where EfficientNet-B0 costs about twice as
much. Demo checkpoints use ShuffleNetV2 x0.5 at 64 px so all three train in well under 90 s.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "mobilenet_v3_large"
DEFAULT_INPUT_SIZE = 224
DEMO_ARCH = "shufflenet_v2_x0_5"
DEMO_INPUT_SIZE = 64
