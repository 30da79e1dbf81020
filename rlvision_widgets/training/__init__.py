"""PPO training of CoinRun agents (``rlvision train``)."""
from .ppo import PPOConfig, Trainer, gae, train

__all__ = ["PPOConfig", "Trainer", "gae", "train"]
