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


def _streams(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _logits_with_impossible_actions(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, NUM_ACTIONS, generator=g) * 3
    logits[torch.rand(rows, NUM_ACTIONS, generator=g) < 0.2] = -float("inf")
    logits[:, 0] = logits[:, 0].clamp(min=-5.0)  # every row keeps a finite entry
    return logits


def test_per_row_streams_draw_exactly_what_one_row_calls_draw():
    """Bit-identical with the per-row loop evaluation used before, step after step."""
    logits = _logits_with_impossible_actions(300, 11)
    seeds = np.random.default_rng(0).integers(0, 2**62, size=300)
    batched, looped = _streams(seeds), _streams(seeds)
    for step in range(3):  # the streams advance identically
        got = sample_actions(logits.roll(step, 0), batched)
        loop = [
            int(sample_actions(logits.roll(step, 0)[i : i + 1], g)[0]) for i, g in enumerate(looped)
        ]
        assert got.dtype == np.int64 and got.tolist() == loop
    # and each row is the row's own single-stream draw, the established one
    first = sample_actions(logits, _streams(seeds))
    assert first.tolist() == [
        int(_reference(logits[i : i + 1], int(s))[0]) for i, s in enumerate(seeds)
    ]
    assert np.isinf(logits).any() and not np.isinf(logits[np.arange(300), first]).any()


def test_per_row_draws_depend_only_on_the_row_and_its_stream():
    logits = _logits_with_impossible_actions(64, 4)
    seeds = np.arange(1000, 1064)
    base = sample_actions(logits, _streams(seeds))
    perm = np.random.default_rng(1).permutation(64)
    permuted = sample_actions(logits[perm], _streams(seeds[perm]))
    assert np.array_equal(permuted, base[perm])
    head = sample_actions(logits[:5], _streams(seeds[:5]))  # batch size does not matter
    assert np.array_equal(head, base[:5])
    assert len(set(base.tolist())) > 3  # the rows really differ
    other = sample_actions(logits, _streams(seeds + 64))
    assert not np.array_equal(other, base)  # the streams matter


def test_per_row_frequencies_match_softmax_chi_square():
    from scipy.stats import chisquare

    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0, -float("inf"), 0.5]])
    p = torch.softmax(logits.double(), -1)[0].numpy()
    n = 20_000
    draws = sample_actions(logits.expand(n, -1), _streams(range(n)))
    counts = np.bincount(draws, minlength=6)
    assert counts[4] == 0  # probability 0 is never drawn
    keep = p > 0
    assert chisquare(counts[keep], n * p[keep]).pvalue > 1e-3


def test_log_probs_with_per_row_streams():
    logits = _logits_with_impossible_actions(40, 6)
    actions, logp = sample_with_log_probs(logits, _streams(range(40)))
    assert np.array_equal(actions, sample_actions(logits, _streams(range(40))))
    expected = torch.distributions.Categorical(logits=logits).log_prob(torch.from_numpy(actions))
    np.testing.assert_allclose(logp, expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), -float("inf")])
def test_per_row_refuses_nan_or_hopeless_rows_without_using_any_stream(bad):
    logits = torch.zeros(3, NUM_ACTIONS)
    logits[2] = bad
    streams = _streams(range(3))
    with pytest.raises(ValueError, match="NaN"):
        sample_actions(logits, streams)
    with pytest.raises(ValueError, match="NaN"):
        sample_with_log_probs(logits, streams)
    fresh = _streams(range(3))
    assert all(torch.equal(g.get_state(), f.get_state()) for g, f in zip(streams, fresh))


def test_per_row_streams_must_be_one_generator_per_row():
    logits = torch.zeros(3, NUM_ACTIONS)
    with pytest.raises(ValueError, match="2 generators for 3 rows"):
        sample_actions(logits, _streams(range(2)))
    with pytest.raises(TypeError, match=r"generator\[1\] must be a torch.Generator"):
        sample_actions(logits, [torch.Generator(), 5, torch.Generator()])
    with pytest.raises(TypeError, match="sequence of one torch.Generator per row"):
        sample_actions(logits, 7)
    assert sample_actions(torch.zeros(0, NUM_ACTIONS), []).shape == (0,)
