"""The one action sampler: seeded, exactly softmax-distributed, with PPO's log-probabilities."""

import numpy as np
import pytest
import torch

from rlvision_widgets.agents.sampling import sample_actions, sample_with_log_probs
from rlvision_widgets.environment.actions import NUM_ACTIONS


def _reference(logits: torch.Tensor, seed: int) -> np.ndarray:
    """The sampler as collection and evaluation have always used it (inverse CDF of one
    float64 uniform per row): stored trajectories and evaluations must not change."""
    u = torch.rand(
        logits.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    ).numpy()
    p = torch.softmax(logits.double(), -1).numpy()
    return np.minimum(
        (u[:, None] >= np.cumsum(p, 1) / p.sum(1, keepdims=True)).sum(1), logits.shape[1] - 1
    )


def test_seeded_draws_are_the_established_ones():
    logits = torch.randn(257, NUM_ACTIONS, generator=torch.Generator().manual_seed(1)) * 3
    got = sample_actions(logits, torch.Generator().manual_seed(5))
    assert got.dtype == np.int64 and np.array_equal(got, _reference(logits, 5))
    again = sample_actions(logits, torch.Generator().manual_seed(5))
    assert np.array_equal(got, again)


def test_frequencies_match_the_categorical_distribution():
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0, -float("inf")]])
    p = torch.softmax(logits, -1)[0].numpy()
    g = torch.Generator().manual_seed(0)
    n = 200_000
    draws = sample_actions(logits.expand(n, -1), g)
    freq = np.bincount(draws, minlength=5) / n
    assert freq[4] == 0  # probability 0 is never drawn
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / n))


def test_log_probs_are_categoricals_and_the_draws_are_sample_actions():
    logits = torch.randn(64, NUM_ACTIONS, generator=torch.Generator().manual_seed(2)) * 4
    actions, logp = sample_with_log_probs(logits, torch.Generator().manual_seed(9))
    assert np.array_equal(actions, sample_actions(logits, torch.Generator().manual_seed(9)))
    expected = torch.distributions.Categorical(logits=logits).log_prob(torch.from_numpy(actions))
    assert logp.dtype == np.float32
    np.testing.assert_allclose(logp, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_global_generator_when_none():
    torch.manual_seed(3)
    a = sample_actions(torch.zeros(32, NUM_ACTIONS), None)
    torch.manual_seed(3)
    assert np.array_equal(a, sample_actions(torch.zeros(32, NUM_ACTIONS), None))


@pytest.mark.parametrize("bad", [float("nan"), -float("inf")])
def test_nan_or_hopeless_logits_are_an_error(bad):
    logits = torch.zeros(2, NUM_ACTIONS)
    logits[1] = bad
    with pytest.raises(ValueError, match="NaN"):
        sample_actions(logits, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="NaN"):
        sample_with_log_probs(logits, torch.Generator().manual_seed(0))
