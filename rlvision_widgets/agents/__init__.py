"""Agent networks, checkpoints and the shipped reference agent."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .networks import ConvAgent, NetworkConfig, article_config, build_network, compact_config

__all__ = ["CheckpointError", "ConvAgent", "NetworkConfig", "article_config", "build_network",
           "compact_config", "load_checkpoint", "save_checkpoint"]
