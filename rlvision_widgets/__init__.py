"""rlvision_widgets: live Jupyter widgets for understanding vision-based RL agents."""
__version__ = "0.1.0"
