"""Which feature an edit removes: the saw feature, every saw feature, a control feature."""

import numpy as np
import pytest

from rlvision_widgets.analysis.labels import HAZARD_CLASSES
from rlvision_widgets.studies.choice import choose_all_features, choose_control, choose_feature


def test_choose_feature_and_control(planted_identification):
    ident = planted_identification()
    saw = choose_feature(ident, "buzzsaw", "saw_blind")
    assert saw.feature == 1 and saw.identified and saw.score == pytest.approx(1.0)
    assert np.allclose(saw.direction, ident.nmf.components_[1])
    assert saw.evidence[0]["confirmed"] and saw.evidence[0]["share"] >= 0.5
    left = choose_feature(ident, "enemy_left")
    assert left.feature is None and not left.identified and "no enemy moving left" in left.note
    assert "identified classes: crate (0), buzzsaw (1)" in left.note
    ctl = choose_control(ident, reference=1, exclude=[1])
    assert ctl.feature in (0, 2) and ctl.cls not in HAZARD_CLASSES
    with pytest.raises(ValueError, match="valid classes"):
        choose_feature(ident, "spikes")
    with pytest.warns(FutureWarning, match="min_score"):
        choose_feature(ident, "saw", min_score=0.0)


def test_every_saw_feature_needs_two_of_them(planted_identification):
    one = choose_all_features(planted_identification(), "saw_blind_all", "saw")
    assert one.feature is None and not one.identified and "only 1 feature" in one.note
    by_name = choose_all_features(planted_identification(), "edit", "saw", min_features=1)
    assert by_name.features == [1] and by_name.identified
    ident = planted_identification(second_saw=True)
    assert ident.labels.by_class()["saw"] == [1, 2]
    two = choose_all_features(ident, "saw_blind_all", "saw")
    # best supported first; both kept, marked as duplicates of each other
    assert sorted(two.features) == [1, 2] and two.identified and len(two.all_directions) == 2
    assert [e["status"] for e in two.evidence] == ["duplicate", "duplicate"]
    none = choose_all_features(ident, "edit", "coin", min_features=1)
    assert not none.identified and "identified classes: crate (0), buzzsaw (1, 2)" in none.note
