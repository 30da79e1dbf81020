"""One action table and one cause list: environment.actions and environment.causes own them;
the layers built on them (agents, rollouts, training) define no copies."""

import ast
from pathlib import Path

import pytest

import rlvision_widgets
from rlvision_widgets.environment import (
    ACTION_GLYPHS,
    ACTION_GROUPS,
    ACTION_NAMES,
    CAUSES,
    FAILURE_CAUSES,
    NUM_ACTIONS,
    action_index,
)

ROOT = Path(rlvision_widgets.__file__).parent
LAYERS = ("environment", "agents", "rollouts", "training")
OWNERS = {
    "NUM_ACTIONS": "environment/actions.py",
    "ACTION_NAMES": "environment/actions.py",
    "ACTION_GLYPHS": "environment/actions.py",
    "ACTION_GROUPS": "environment/actions.py",
    "CAUSES": "environment/causes.py",
    "FAILURE_CAUSES": "environment/causes.py",
}


def _modules():
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def test_the_table_is_consistent():
    assert len(ACTION_NAMES) == len(ACTION_GLYPHS) == NUM_ACTIONS == 15
    assert all(0 <= a < NUM_ACTIONS for group in ACTION_GROUPS.values() for a in group)
    assert [action_index(n.lower()) for n in ACTION_NAMES] == list(range(NUM_ACTIONS))
    with pytest.raises(ValueError, match="out of range"):
        action_index(NUM_ACTIONS)


def test_failure_causes_are_derived_from_the_cause_list():
    assert FAILURE_CAUSES == tuple(c for c in CAUSES if c not in ("success", "unknown"))


@pytest.mark.parametrize("module,tree", list(_modules()), ids=[m for m, _ in _modules()])
def test_no_copies_of_the_action_table_or_cause_list(module, tree):
    for node in ast.walk(tree):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for t in targets:
            if isinstance(t, ast.Name) and t.id in OWNERS:
                assert module == OWNERS[t.id], f"{module} defines its own {t.id}"
    if module.startswith("environment/"):
        return  # engine byte offsets and tile ids there may be 15
    fifteens = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and type(n.value) is int and n.value == 15
    ]
    assert not fifteens, f"{module} hard-codes 15 (use NUM_ACTIONS) at lines {fifteens}"
