"""ITNetForCausalLM and its `ITNetCache`: cached decoding equals the full forward, `generate()` with and without the
cache, left-padded batches, sampling and beam search, the loss, tied embeddings, save/load, and the refusals."""

import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM

from modeling_itnet import ITNetCache, ITNetConfig, ITNetForCausalLM, ITNetModel
from modeling_itnet.branches_itnet import cacheable_families
from modeling_itnet.compat_itnet import cache_of, cache_output

ALL_EXACT = list(cacheable_families())  # every registered family with a generation state
FAMILIES = [[family] for family in ALL_EXACT] + [ALL_EXACT]
FAMILY_IDS = ALL_EXACT + ["mixed"]
VOCAB = 50


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Decoding runs hundreds of tiny ops; at these sizes intra-op threads only add synchronisation (tens of times
    slower on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lm_config(families, **overrides) -> ITNetConfig:
    values = {
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 48,
        "max_position_embeddings": 128,
        "kernel_num_frequencies": 4,
        "kernel_mlp_size": 16,
        "local_window": 4,
        "state_size": 8,
        "mlp_kernel_tile_size": 5,  # several tiles in the full forward
        "kernel_families": families,
        "is_causal": True,
        "pad_token_id": 0,
    }
    values.update(overrides)
    return ITNetConfig(**values)


def build_lm(families, seed=0, **overrides) -> ITNetForCausalLM:
    """A tiny causal LM whose weights are perturbed away from the initialisation: at std 0.02 every branch
    contributes almost nothing to the logits, and greedy decoding repeats one token; perturbed, each branch matters
    and a wrong cache shows."""
    torch.manual_seed(seed)
    model = ITNetForCausalLM(lm_config(families, **overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def left_padded(lengths, seed=1):
    """Prompts of the given lengths, left-padded with token 0: `(input_ids, attention_mask, prompts)`."""
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(1, VOCAB, (n,), generator=gen) for n in lengths]
    width = max(lengths)
    input_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = prompt
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask, prompts


def cached_logits(model, input_ids, attention_mask, prompt_length, chunk):
    """Logits of the cached pass: the prompt, then a chunk of `chunk` tokens, then one token at a time."""
    prompt = slice(0, prompt_length)
    out = model(input_ids=input_ids[:, prompt], attention_mask=attention_mask[:, prompt], use_cache=True)
    cache, logits = cache_of(out), [out.logits]
    assert isinstance(cache, ITNetCache)
    bounds = [prompt_length, prompt_length + chunk, *range(prompt_length + chunk + 1, input_ids.shape[1] + 1)]
    for start, end in itertools.pairwise(bounds):
        out = model(input_ids=input_ids[:, start:end], attention_mask=attention_mask[:, :end], cache=cache)
        assert cache_of(out) is cache and cache.get_seq_length() == end
        logits.append(out.logits)
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("families", FAMILIES, ids=FAMILY_IDS)
def test_cached_decoding_gives_the_logits_of_the_full_forward(families):
    model = build_lm(families)
    input_ids, attention_mask, _ = left_padded([25, 21, 16])  # rows padded by 0, 4 and 9 positions
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask).logits
        incremental = cached_logits(model, input_ids, attention_mask, prompt_length=7, chunk=5)
    assert full.abs().max() > 1.0  # the logits are not all near zero
    torch.testing.assert_close(incremental, full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("families", [["recurrent"], ["low_rank"], ["ssm"], ["local"]], ids=str)
def test_recurrent_states_do_not_grow_with_the_sequence(families):
    model = build_lm(families)
    input_ids = torch.randint(1, VOCAB, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cache = cache_of(model(input_ids=input_ids[:, :5], use_cache=True))
        shapes = [
            {f: {k: t.shape for k, t in s.tensors().items()} for f, s in layer.items()} for layer in cache.states
        ]
        for t in range(5, 20):
            model(input_ids=input_ids[:, t : t + 1], cache=cache)
    assert [
        {f: {k: t.shape for k, t in s.tensors().items()} for f, s in layer.items()} for layer in cache.states
    ] == shapes
    assert cache.get_seq_length() == 20


@pytest.mark.parametrize("families", FAMILIES, ids=FAMILY_IDS)
def test_greedy_generation_is_the_same_with_and_without_the_cache(families):
    model = build_lm(families)
    input_ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(2))
    cached = model.generate(input_ids, do_sample=False, max_new_tokens=12, return_dict_in_generate=True)
    uncached = model.generate(input_ids, do_sample=False, max_new_tokens=12, use_cache=False)
    assert cached.sequences.shape == (2, 18)
    assert torch.equal(cached.sequences, uncached)
    assert isinstance(cache_of(cached), ITNetCache)
    assert cache_of(cached).get_seq_length() == 17  # the last token is generated, never fed back


def test_generation_from_inputs_embeds_and_from_a_returned_cache():
    model = build_lm(ALL_EXACT)
    input_ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(6))
    reference = model.generate(input_ids, do_sample=False, max_new_tokens=8)
    embeds = model.get_input_embeddings()(input_ids)
    from_embeds = model.generate(inputs_embeds=embeds, do_sample=False, max_new_tokens=8)
    assert torch.equal(from_embeds, reference[:, 6:])  # only the new tokens, as for any decoder
    first = model.generate(input_ids, do_sample=False, max_new_tokens=4, return_dict_in_generate=True)
    resumed = model.generate(
        first.sequences,
        attention_mask=torch.ones_like(first.sequences),  # a generated pad id (0) is a real token here
        **cache_output(cache_of(first)),  # under the installed `generate`'s name
        do_sample=False,
        max_new_tokens=4,
    )
    assert torch.equal(resumed, reference[:, :14])


@pytest.mark.parametrize("families", FAMILIES, ids=FAMILY_IDS)
def test_left_padded_batch_generates_each_prompt_as_alone(families):
    model = build_lm(families)
    input_ids, attention_mask, prompts = left_padded([3, 7, 5], seed=3)
    batched = model.generate(input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=12)
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], do_sample=False, max_new_tokens=12)
        assert torch.equal(batched[row, input_ids.shape[1] :], alone[0, len(prompt) :]), f"row {row}"


@pytest.mark.parametrize("families", FAMILIES, ids=FAMILY_IDS)
def test_sampling_and_beam_search_run_and_return_the_right_shapes(families):
    model = build_lm(families)
    input_ids, attention_mask, _ = left_padded([4, 6], seed=4)
    torch.manual_seed(0)
    sampled = model.generate(
        input_ids, attention_mask=attention_mask, do_sample=True, top_k=5, max_new_tokens=12, num_return_sequences=2
    )
    assert sampled.shape == (4, 18)
    assert ((sampled >= 0) & (sampled < VOCAB)).all()
    beam_search = {"attention_mask": attention_mask, "num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 12}
    beams = model.generate(input_ids, **beam_search)
    assert beams.shape == (6, 18)
    # the cache follows the beams (`ITNetCache.reorder_cache`): the same beams as without it
    uncached = model.generate(input_ids, **beam_search, use_cache=False)
    assert torch.equal(beams, uncached)


def test_loss_is_the_shifted_cross_entropy():
    model = build_lm(ALL_EXACT)
    input_ids = torch.randint(1, VOCAB, (3, 9), generator=torch.Generator().manual_seed(5))
    out = model(input_ids=input_ids, labels=input_ids)
    assert torch.isfinite(out.loss)
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), input_ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    # -100 is ignored; `num_items_in_batch` (from the Trainer) turns the mean into a sum over that count
    labels = input_ids.clone()
    labels[0, 4:] = -100
    out = model(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(40))
    targets = labels[:, 1:].reshape(-1)
    summed = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), targets, reduction="sum")
    torch.testing.assert_close(out.loss, summed / 40)
    out.loss.backward()
    assert model.lm_head.weight.grad is not None


def test_logits_to_keep_and_tuple_outputs():
    model = build_lm(["spectral", "low_rank"])
    input_ids = torch.randint(1, VOCAB, (2, 8))
    with torch.no_grad():
        full = model(input_ids=input_ids).logits
        last = model(input_ids=input_ids, logits_to_keep=1).logits
        as_tuple = model(input_ids=input_ids, return_dict=False)
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last[:, 0], full[:, -1])
    assert torch.equal(as_tuple[0], full)


@pytest.mark.parametrize("tie", [True, False])
def test_save_load_round_trip_and_tied_embeddings(tmp_path, tie):
    model = build_lm(["spectral", "recurrent"], tie_word_embeddings=tie)
    embedding = model.itnet.text_embeddings.word_embeddings.weight
    assert (model.lm_head.weight.data_ptr() == embedding.data_ptr()) is tie
    if not tie:
        assert not torch.equal(model.lm_head.weight, embedding)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(reloaded) is ITNetForCausalLM
    assert reloaded.config.tie_word_embeddings is tie
    reloaded_embedding = reloaded.itnet.text_embeddings.word_embeddings.weight
    assert (reloaded.lm_head.weight.data_ptr() == reloaded_embedding.data_ptr()) is tie
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    input_ids = torch.randint(1, VOCAB, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(input_ids=input_ids).logits, reloaded(input_ids=input_ids).logits)
    assert torch.equal(
        model.generate(input_ids, do_sample=False, max_new_tokens=5),
        reloaded.generate(input_ids, do_sample=False, max_new_tokens=5),
    )


def test_monte_carlo_mlp_kernel_refuses_to_generate():
    model = build_lm(["mlp", "low_rank"], mlp_kernel_samples=4)
    input_ids = torch.randint(1, VOCAB, (1, 5))
    with pytest.raises(ValueError, match="mlp_kernel_samples"):
        model.generate(input_ids, max_new_tokens=3)
    with pytest.raises(ValueError, match="mlp_kernel_samples"):
        model.generate(input_ids, max_new_tokens=3, use_cache=False)
    with pytest.raises(ValueError, match="mlp_kernel_samples"):
        model(input_ids=input_ids, use_cache=True)
    assert model(input_ids=input_ids).logits.shape == (1, 5, VOCAB)  # the forward itself works


def test_causal_lm_needs_causal_kernels():
    with pytest.raises(ValueError, match="`is_causal=True`"):
        ITNetForCausalLM(lm_config(["spectral"], is_causal=False))
    bidirectional = ITNetModel(lm_config(["spectral"], is_causal=False))
    with pytest.raises(ValueError, match="`is_causal=True`"):
        bidirectional(input_ids=torch.ones(1, 4, dtype=torch.long), use_cache=True)


def test_cache_misuse_raises_clear_errors():
    model = build_lm(["low_rank"], max_position_embeddings=10)
    input_ids = torch.randint(1, VOCAB, (2, 6))
    cache = cache_of(model(input_ids=input_ids, use_cache=True))
    with pytest.raises(ValueError, match="attention_mask"):  # must cover the 6 cached and the new token
        model(input_ids=input_ids[:, :1], attention_mask=torch.ones(2, 1), cache=cache)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=input_ids, cache=cache)
    with pytest.raises(ValueError, match="images"):
        ITNetModel(lm_config(["spectral"]))(pixel_values=torch.randn(1, 3, 32, 32), use_cache=True)


def test_activation_checkpointing_in_training_uses_no_cache():
    model = build_lm(["recurrent", "spectral"]).train()
    model.activation_checkpointing_enable()
    input_ids = torch.randint(1, VOCAB, (2, 6))
    out = model(input_ids=input_ids, labels=input_ids, use_cache=True)
    assert cache_of(out) is None
    out.loss.backward()


def test_generate_stops_at_the_configured_eos():
    """With `eos_token_id` set (as `run_clm.py` saves it), a sequence ends at its first EOS and is padded after it."""
    model = build_lm(["spectral", "low_rank"])
    prompt = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(3))
    free = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)[0, 5:]
    eos = int(free[2])  # the third generated token becomes EOS
    model.config.eos_token_id = model.generation_config.eos_token_id = eos
    stopped = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)[0, 5:]
    first = int((free == eos).nonzero()[0])
    assert stopped.tolist() == free[: first + 1].tolist()
