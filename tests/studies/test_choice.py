"""Which feature an edit removes: the saw feature, every saw feature, a control feature."""

import numpy as np
import pytest

from rlvision_widgets.analysis.features import OBJECT_CLASSES
from rlvision_widgets.studies.choice import choose_all_features, choose_control, choose_feature


def test_choose_feature_and_control(planted_identification):
    ident = planted_identification()
    saw = choose_feature(ident, "buzzsaw", "saw_blind")
    assert saw.feature == 1 and saw.identified and saw.score == pytest.approx(1.0)
    assert np.allclose(saw.direction, ident.nmf.components_[1])
    left = choose_feature(ident, "enemy_left")
    assert left.feature is None and not left.identified and "no enemy moving left" in left.note
    ctl = choose_control(ident, reference=1, exclude=[1])
    assert ctl.feature == 0 and ctl.cls == "wall"
    with pytest.raises(ValueError, match="valid classes"):
        choose_feature(ident, "spikes")


def test_every_saw_feature_needs_two_of_them(planted_identification):
    ident = planted_identification()
    one = choose_all_features(ident, "saw_blind_all", "saw", 0.05)
    assert one.feature is None and not one.identified and "only 1 feature" in one.note
    ident.scores.correlation[2, OBJECT_CLASSES.index("saw")] = 2.0  # a second saw feature
    two = choose_all_features(ident, "saw_blind_all", "saw", 0.05)
    assert two.features == [1, 2] and two.identified and len(two.all_directions) == 2
