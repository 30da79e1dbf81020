"""The corpus collector: the one resolver for its agent, the one sampler for its actions."""

import numpy as np
import pytest

import rlvision_widgets.rollouts.corpus as corpus_module
from rlvision_widgets.agents import build_network
from rlvision_widgets.rollouts.corpus import collect_corpus

KW = dict(num_obs=8, interval=2, num_envs=4, seed=3)


def test_agent_actions_come_from_the_one_sampler(monkeypatch):
    calls = []

    def spy(logits, generator):
        calls.append(tuple(logits.shape))
        return np.full(logits.shape[0], 7, np.int64)  # always RIGHT

    monkeypatch.setattr(corpus_module, "sample_actions", spy)
    net = build_network("compact", width=8)
    net.train()
    c = collect_corpus(net, **KW)
    assert len(c) == 8 and calls and set(calls) == {(4, 15)}
    assert net.training, "the caller's agent keeps its mode"


def test_agent_by_name_and_determinism():
    a = collect_corpus("random", **KW)
    b = collect_corpus("random", **KW)
    assert np.array_equal(a.obs, b.obs) and a.meta["policy"] == "RandomAgent"
    assert collect_corpus(None, **KW).meta["policy"] == "uniform random"


def test_unknown_agent_is_an_error():
    with pytest.raises(ValueError, match="unknown agent"):
        collect_corpus("no-such-agent", **KW)
