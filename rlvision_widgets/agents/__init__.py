"""Agent networks, checkpoints, the one agent resolver, the one action sampler, the one editing
mechanism (``apply_edit``) and the shipped reference agent."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .editing import Edit, EditedAgent, apply_edit
from .networks import ConvAgent, NetworkConfig, article_config, build_network, compact_config
from .random_agent import RandomAgent
from .registry import agent_names, load_agent, resolve_agent
from .sampling import sample_actions, sample_with_log_probs

__all__ = [
    "CheckpointError",
    "ConvAgent",
    "Edit",
    "EditedAgent",
    "NetworkConfig",
    "RandomAgent",
    "agent_names",
    "apply_edit",
    "article_config",
    "build_network",
    "compact_config",
    "load_agent",
    "load_checkpoint",
    "resolve_agent",
    "sample_actions",
    "sample_with_log_probs",
    "save_checkpoint",
]
