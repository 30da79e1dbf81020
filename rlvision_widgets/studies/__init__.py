"""Studies built on the analysis: the article's blindness experiments (model editing), failure
dissection and hallucination search, with their statistics, reports and charts.

One job per module: :mod:`.article` (the article's table: conditions, cause columns, figures),
:mod:`.statistics` (comparison statistics), :mod:`.choice` (which feature to edit),
:mod:`.removal` (the frame-level blindness check), :mod:`.report` (``BlindnessReport``, its
files), :mod:`.charts`, :mod:`.blindness` (preparing edits and running the experiments),
:mod:`.failures` (failure dissection and hallucinations as explorer bookmarks),
:mod:`.counterfactual_saws` (hide every saw in view: does the saw features' attribution predict
what the agent loses? A check of the attribution the article could not make) and :mod:`.sweep`
(the diversity hypothesis: agents trained on more and more levels, their generalization and an
automatic interpretability score; ``run_sweep`` runs locally or on Ray).

>>> from rlvision_widgets.studies import run_blindness_experiments, load_report
>>> report = run_blindness_experiments(load_agent("coinrun"), levels=2000)   # doctest: +SKIP
"""

from .article import (
    ARTICLE_LEVELS,
    ARTICLE_TABLE,
    CONDITION_TITLES,
    CONDITIONS,
    EDIT_TARGETS,
    OTHER_CAUSES,
    TABLE_CAUSES,
    TABLE_HEADERS,
    table_counts,
)
from .blindness import (
    _old_names,
    agent_env_options,
    blind_agent,
    prepare_edit,
    run_blindness_experiments,
)
from .charts import plot_blindness_chart, plot_failures
from .choice import EditChoice, choose_all_features, choose_control, choose_feature
from .counterfactual_saws import SawStudy, bootstrap_spearman, saw_counterfactual_study, spearman
from .failures import (
    BOOKMARK_KINDS,
    FailureRecord,
    bookmark,
    failure_bookmarks,
    failure_frames,
    hallucination_search,
    list_failures,
)
from .removal import removal_effects
from .report import BlindnessReport, load_report
from .statistics import compare_results, holm_adjust, paired_bootstrap_blindness, rate_ratio_ci
from .sweep import (
    ARTICLE_DIVERSITY,
    SweepCell,
    SweepConfig,
    SweepResults,
    cell_name,
    load_sweep,
    plot_sweep,
    publish_sweep,
    run_cell,
    run_sweep,
    sample_levels,
)

__all__ = [
    "ARTICLE_DIVERSITY",
    "SweepCell",
    "SweepConfig",
    "SweepResults",
    "cell_name",
    "load_sweep",
    "plot_sweep",
    "publish_sweep",
    "run_cell",
    "run_sweep",
    "sample_levels",
    "SawStudy",
    "bootstrap_spearman",
    "saw_counterfactual_study",
    "spearman",
    "ARTICLE_LEVELS",
    "ARTICLE_TABLE",
    "BOOKMARK_KINDS",
    "BlindnessReport",
    "CONDITIONS",
    "CONDITION_TITLES",
    "EDIT_TARGETS",
    "EditChoice",
    "FailureRecord",
    "OTHER_CAUSES",
    "TABLE_CAUSES",
    "TABLE_HEADERS",
    "agent_env_options",
    "blind_agent",
    "bookmark",
    "choose_all_features",
    "choose_control",
    "choose_feature",
    "compare_results",
    "failure_bookmarks",
    "failure_frames",
    "hallucination_search",
    "holm_adjust",
    "list_failures",
    "load_report",
    "paired_bootstrap_blindness",
    "plot_blindness_chart",
    "plot_failures",
    "prepare_edit",
    "rate_ratio_ci",
    "removal_effects",
    "run_blindness_experiments",
    "table_counts",
]

# 0.1 names of rlvision_widgets.analysis.experiments (collect_corpus, strict_json,
# HAZARD_CLASSES), with a FutureWarning
__getattr__ = _old_names(__name__)
