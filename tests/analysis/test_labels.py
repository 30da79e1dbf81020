"""One display-label table and one cause list: the analysis derives its names from the
environment's and moved names still work (with a FutureWarning)."""

from __future__ import annotations

import pytest

from rlvision_widgets import files
from rlvision_widgets.analysis.labels import (
    CAUSE_LABELS,
    CLASS_LABELS,
    HAZARD_CLASSES,
    LABELS,
    label,
)
from rlvision_widgets.environment.actions import action_index
from rlvision_widgets.environment.causes import CAUSES, FAILURE_CAUSES
from rlvision_widgets.environment.render import OBJECT_CLASSES


def test_the_label_table_covers_every_class_and_outcome_in_their_order():
    assert tuple(CLASS_LABELS) == OBJECT_CLASSES
    assert tuple(CAUSE_LABELS) == CAUSES
    assert set(LABELS) == set(OBJECT_CLASSES) | set(CAUSES)
    assert all(isinstance(v, str) and v for v in LABELS.values())
    assert CAUSE_LABELS["saw"] == CLASS_LABELS["saw"] == label("saw") == "buzzsaw"
    assert label("unfinished") == "unfinished"
    with pytest.raises(TypeError):
        LABELS["saw"] = "saw"  # read-only: one table, changed in one place


def test_hazards_are_the_failure_causes_an_agent_can_see():
    assert HAZARD_CLASSES == ("saw", "enemy_left", "enemy_right", "lava")
    assert set(HAZARD_CLASSES) == set(FAILURE_CAUSES) & set(OBJECT_CLASSES)


def test_feature_identification_uses_the_one_label_table():
    from rlvision_widgets.analysis import features

    assert features.CLASS_LABELS is CLASS_LABELS
    assert "CLASS_LABELS" not in features.__all__


@pytest.mark.parametrize(
    "module,name,new",
    [
        ("rlvision_widgets.analysis.bookmarks", "FAILURE_CAUSES", FAILURE_CAUSES),
        ("rlvision_widgets.analysis", "array_hash", files.array_hash),
        ("rlvision_widgets.analysis.outputs", "parse_action", action_index),
    ],
)
def test_moved_analysis_names_warn_and_are_the_one_definition(module, name, new):
    import importlib

    mod = importlib.import_module(module)
    with pytest.warns(FutureWarning, match=name):
        old = getattr(mod, name)
    assert old is new


def test_the_cache_does_not_re_export_the_file_helpers():
    from rlvision_widgets.analysis import cache

    assert not {"array_hash", "save_arrays", "load_arrays"} & set(cache.__all__)
    assert cache.save_arrays is files.save_arrays  # still importable, one public home
    import rlvision_widgets.analysis as analysis

    assert "array_hash" not in analysis.__all__


def test_outputs_read_actions_with_the_environments_parser():
    from rlvision_widgets.analysis.outputs import parse_output

    for name in ("right+up", "LEFT", "7", "noop"):
        assert parse_output(f"logit:{name}").actions == (action_index(name),)
    with pytest.raises(ValueError, match="bad output 'logprob:JUMP'.*one of LEFT"):
        parse_output("logprob:JUMP")
