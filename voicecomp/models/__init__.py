"""Multi-voice models (SPEC §3)."""

from voicecomp.models.multivoice import (
    ARCHITECTURES,
    FRAME_SHARED_KEYS,
    PER_EXAMPLE_KEYS,
    MultiVoiceConfig,
    MultiVoiceModel,
)

__all__ = [
    "ARCHITECTURES",
    "FRAME_SHARED_KEYS",
    "PER_EXAMPLE_KEYS",
    "MultiVoiceConfig",
    "MultiVoiceModel",
]
