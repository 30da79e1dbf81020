"""CoinRun environment layer: options, vectorized env, engine state and ground truth."""
from .coinrun import ACTION_GLYPHS, ACTION_GROUPS, ACTION_NAMES, CoinRunEnv, EnvOptions

__all__ = ["ACTION_GLYPHS", "ACTION_GROUPS", "ACTION_NAMES", "CoinRunEnv", "EnvOptions"]
