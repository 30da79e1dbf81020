"""Issue 10 for the studies: one job per module, one cause list (the environment's), and every
0.1 name of ``rlvision_widgets.analysis.experiments`` still working, with a FutureWarning."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest

import rlvision_widgets.studies as studies
from rlvision_widgets import files
from rlvision_widgets.analysis.labels import HAZARD_CLASSES, LABELS
from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.rollouts import Trajectories
from rlvision_widgets.rollouts.evaluate import EvaluationResult
from rlvision_widgets.studies.article import OTHER_CAUSES, TABLE_CAUSES, TABLE_HEADERS

#: what ``rlvision_widgets.analysis.experiments`` offered in 0.1 (its ``__all__`` and constants)
OLD_PUBLIC = (
    "ARTICLE_LEVELS",
    "ARTICLE_TABLE",
    "BlindnessReport",
    "CONDITIONS",
    "EditChoice",
    "TABLE_CAUSES",
    "agent_env_options",
    "blind_agent",
    "choose_control",
    "choose_feature",
    "compare_results",
    "collect_corpus",
    "load_report",
    "plot_blindness_chart",
    "prepare_edit",
    "rate_ratio_ci",
    "removal_effects",
    "run_blindness_experiments",
    "strict_json",
    "table_counts",
    "OTHER_CAUSES",
    "TABLE_HEADERS",
    "CONDITION_TITLES",
    "EDIT_TARGETS",
    "HAZARD_CLASSES",
)
#: served with a warning (gone from the package or moved out of it)
OLD_ONLY = {"collect_corpus", "strict_json", "HAZARD_CLASSES"}


def _import_fresh(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_every_old_experiments_name_still_imports():
    with pytest.warns(FutureWarning, match="analysis.experiments moved to"):
        old = _import_fresh("rlvision_widgets.analysis.experiments")
    for name in OLD_PUBLIC:
        if name in OLD_ONLY:
            with pytest.warns(FutureWarning, match=name):
                value = getattr(old, name)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                value = getattr(old, name)
            assert value is getattr(studies, name)
        assert value is not None, name
    with pytest.warns(FutureWarning):
        assert old.strict_json is files.json_safe
    with pytest.warns(FutureWarning):
        assert old.HAZARD_CLASSES is HAZARD_CLASSES
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = old.no_such_name


def test_the_package_exports_each_modules_public_names():
    for module in (
        "article",
        "statistics",
        "choice",
        "removal",
        "report",
        "charts",
        "blindness",
        "failures",
    ):
        mod = importlib.import_module(f"rlvision_widgets.studies.{module}")
        for name in mod.__all__:
            assert getattr(studies, name) is getattr(mod, name), f"{module}.{name}"
            assert name in studies.__all__, name


def test_old_collect_corpus_warns_and_collects_with_the_agents_options():
    import rlvision_widgets.studies.blindness as blindness

    assert "collect_corpus" not in blindness.__all__ and "collect_corpus" not in studies.__all__
    with pytest.warns(FutureWarning, match="collect_trajectories"):
        old = studies.collect_corpus
    traj = old("random", 1, 8, seed=0)
    try:
        assert isinstance(traj, Trajectories) and traj.obs.shape[:2] == (1, 8)
    finally:
        traj.close()


def test_plot_failures_moved_here_and_warns_at_its_old_place():
    import rlvision_widgets.rollouts.evaluate as evaluate

    with pytest.warns(FutureWarning, match="plot_failures"):
        old = evaluate.plot_failures
    assert old is studies.plot_failures
    r = EvaluationResult(np.arange(4), ["saw", "enemy_left", "multiple", "success"], np.ones(4))
    fig = studies.plot_failures({"agent": r})
    ticks = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_xticklabels()]
    assert ticks == [LABELS[c] for c in FAILURE_CAUSES]


def test_the_articles_columns_partition_the_environments_failure_causes():
    own = TABLE_CAUSES[:-1]
    assert TABLE_CAUSES[-1] == "other" and not set(own) & set(OTHER_CAUSES)
    assert set(own) | set(OTHER_CAUSES) == set(FAILURE_CAUSES)
    assert all(TABLE_HEADERS[c] == LABELS[c] for c in own)
    r = EvaluationResult(
        np.arange(len(FAILURE_CAUSES)), list(FAILURE_CAUSES), np.ones(len(FAILURE_CAUSES))
    )
    counts = studies.table_counts(r)
    assert sum(counts.values()) == len(FAILURE_CAUSES) and counts["other"] == len(OTHER_CAUSES)


def test_the_control_edit_avoids_exactly_the_hazards(planted_identification):
    ident = planted_identification()
    labels = ident.labels.labels
    control = studies.choose_control(ident, reference=None)
    assert control.cls not in HAZARD_CLASSES and labels[control.feature] == control.cls
    hazard_features = {
        k for c, ks in ident.labels.by_class().items() if c in HAZARD_CLASSES for k in ks
    }
    assert hazard_features == {1} and control.feature != 1
