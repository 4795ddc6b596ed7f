import numpy as np
import pytest
import torch

from mona.activations import ActivationConfig, ActivationStats, forward_hooks, iter_activations, special_token_ids
from mona.data import load_samples
from mona.errors import ModelError

RECORDS = [
    {"instruction": "Solve 3x + 5 = 20.", "output": "x = 5"},
    {"instruction": "What is the capital of France?", "output": "Paris is the capital of France."},
    {"text": "The quick brown fox jumps over the lazy dog. " * 3, "id": "t"},
]


def _samples():
    return load_samples(RECORDS[:2]) + load_samples(RECORDS[2:])


def test_batches_cover_every_sample_once_with_masks(tiny):
    samples = _samples()
    seen = []
    hook = "blocks.1.hook_resid_post"
    for batch in iter_activations(tiny, samples, ActivationConfig(hooks=(hook,), batch_tokens=64), progress=False):
        seen.extend(batch.indices.tolist())
        B, T = batch.tokens.shape
        assert batch.acts[hook].shape == (B, T, tiny.d_model)
        special = torch.tensor(special_token_ids(tiny.tokenizer))
        assert not torch.isin(batch.tokens[batch.valid], special).any()  # BOS, padding, turn markers excluded
        assert torch.equal(batch.prompt | batch.response, batch.valid)
        assert not (batch.prompt & batch.response).any()
        for row, idx in enumerate(batch.indices):
            resp = tiny.tokenizer.decode(batch.tokens[row][batch.response[row]])
            assert samples[idx].response.split()[0] in resp
    assert sorted(seen) == [0, 1, 2]


def test_padding_does_not_change_activations(tiny):
    """Right padding with causal attention: a sample's activations do not depend on its batch mates."""
    samples = _samples()
    hook = "blocks.2.hook_resid_post"
    together = {}
    for b in iter_activations(tiny, samples, ActivationConfig(hooks=(hook,), batch_tokens=10_000), progress=False):
        for row, idx in enumerate(b.indices):
            together[idx] = b.acts[hook][row][b.valid[row]]
    assert len(together) == 3
    for i, s in enumerate(samples):
        (alone,) = iter_activations(tiny, [s], ActivationConfig(hooks=(hook,)), progress=False)
        torch.testing.assert_close(alone.acts[hook][0][alone.valid[0]], together[i], rtol=1e-4, atol=1e-4)


def test_length_bucketing_limits_padding(tiny):
    recs = [{"prompt": "word " * (1 + (i * 7) % 40), "response": "ok", "id": str(i)} for i in range(40)]
    stats = ActivationStats()
    cfg = ActivationConfig(batch_tokens=256, max_tokens=256, hooks=("blocks.0.hook_resid_post",))
    real = 0
    batches = 0
    for b in iter_activations(tiny, load_samples(recs), cfg, progress=False, stats=stats):
        batches += 1
        assert b.tokens.numel() <= 256 or b.tokens.shape[0] == 1
        real += int((b.tokens != tiny.tokenizer.pad_token_id).sum())
    assert stats.samples == 40 and batches > 1
    assert stats.padded_tokens < 1.15 * real  # sorted by length: little padding


def test_truncation_counted(tiny):
    stats = ActivationStats()
    samples = load_samples([{"text": "word " * 100, "id": "long"}, {"text": "short", "id": "s"}])
    batches = list(
        iter_activations(
            tiny,
            samples,
            ActivationConfig(max_tokens=16, hooks=("blocks.0.hook_resid_post",)),
            progress=False,
            stats=stats,
        )
    )
    assert stats.truncated == 1 and stats.truncated_ids == ["long"]
    assert max(b.tokens.shape[1] for b in batches) == 16


def test_stop_at_layer_matches_full_forward(tiny):
    toks = tiny.model.to_tokens("Photosynthesis turns light into sugar.")
    hook = "blocks.1.hook_resid_post"
    early = forward_hooks(tiny, toks, [hook])[hook]
    _, cache = tiny.model.run_with_cache(toks, names_filter=[hook])
    torch.testing.assert_close(early, cache[hook])


def test_layer_beyond_depth_is_a_clear_error(tiny):
    with pytest.raises(ModelError, match="beyond the model's depth: .* has 3 layers"):
        list(iter_activations(tiny, _samples(), ActivationConfig(hooks=("blocks.9.hook_resid_post",))))
    with pytest.raises(ModelError, match="not a per-layer hook"):
        list(iter_activations(tiny, _samples(), ActivationConfig(hooks=("resid",))))


def test_memory_bounded_windows(tiny):
    """Samples are tokenised a window at a time: batches never mix windows."""
    recs = [{"text": f"sample number {i}", "id": str(i)} for i in range(30)]
    cfg = ActivationConfig(hooks=("blocks.0.hook_resid_post",), window=8)
    for b in iter_activations(tiny, load_samples(recs), cfg, progress=False):
        assert len(set(np.asarray(b.indices) // 8)) == 1


def test_template_scaffolding_is_not_valid(tiny):
    """Only the messages' own text is pooled: role names and turn newlines are the same in every sample."""
    (s,) = load_samples([{"instruction": "Solve 3x + 5 = 20.", "output": "x = 5"}])
    (b,) = iter_activations(tiny, [s], ActivationConfig(hooks=("blocks.0.hook_resid_post",)), progress=False)
    decode = tiny.tokenizer.decode
    assert decode(b.tokens[0][b.prompt[0]]).replace(" ", "") == "Solve3x+5=20."
    assert decode(b.tokens[0][b.response[0]]).replace(" ", "") == "x=5"
    first, last = b.valid[0].nonzero()[[0, -1], 0]
    assert decode(b.tokens[0][first]).strip() and "=" not in decode(b.tokens[0][first])  # 'Solve', not 'user'
    assert decode(b.tokens[0][last]).strip() == "5"  # the response's last token, not the template's newline
