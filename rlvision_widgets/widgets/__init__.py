"""Live Jupyter widgets (anywidget): one Python class per TypeScript component in ``js/``, and
the :class:`Explorer` that composes them and binds them to the analysis engines.

========================  ===========================================================================
``TrajectoryViewer``      observation + attribution overlays, policy, video controls, timeline
``AttributionLegend``     feature colours, dataset-example thumbnails, labels; hover isolates
``FeatureGrid``           spatially-aware dataset-example mosaic with zoom and density
``Controls``              layer, output, rank, residual, gain, blur, scale; bookmarks
``EditPanel``             per-feature edit strength / switch-off; re-run the edited agent
``CounterfactualPanel``   edit the game on a frame (hide, move, place objects): value, policy, features
``Explorer``              all of the above on one model, bound to the engines
``explore()``             the explorer on the shipped reference agent, in one line
========================  ===========================================================================

Every widget also exports to one self-contained HTML file: ``widget.save_html(path)``.

>>> from rlvision_widgets.widgets import explore
>>> explorer = explore()                      # doctest: +SKIP
"""

from .controls import Controls, output_options
from .counterfactual_panel import CounterfactualPanel
from .edit_panel import EditPanel
from .explorer import Explorer, explore, export_explorer
from .export import save_html
from .feature_grid import FeatureGrid
from .legend import AttributionLegend
from .trajectory_viewer import TrajectoryViewer

__all__ = [
    "AttributionLegend",
    "Controls",
    "CounterfactualPanel",
    "EditPanel",
    "Explorer",
    "FeatureGrid",
    "TrajectoryViewer",
    "explore",
    "export_explorer",
    "output_options",
    "save_html",
]
