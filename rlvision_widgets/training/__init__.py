"""PPO training of CoinRun agents (``rlvision train``) and packaging of a shipped agent."""

from .._compat import moved_names
from .ppo import PPOConfig, Trainer, train

__all__ = ["PPOConfig", "Trainer", "train"]

__getattr__ = moved_names(__name__, {"gae": "rollouts.gae:gae"})
