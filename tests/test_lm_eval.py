"""lm-evaluation-harness on an ITNet causal LM checkpoint, as its docs run a Hugging Face model
(`--model hf --model_args pretrained=DIR,trust_remote_code=True`), on a local multiple-choice task file: every
loglikelihood it reports equals the hand computation from the model's own logits, the answers differ (it scores the
continuation, not a template token), and its accuracy is the argmax of those loglikelihoods."""

import json

import pytest
import torch
from itnet_testing import tokenizer_config
from transformers import AutoTokenizer

from modeling_itnet import CAUSAL_TOKENIZER, ITNetForCausalLM, tokenizer_path

QUESTIONS = [
    {"question": "the play is a", "choices": ["comedy", "tragedy", "history"], "answer": 1},
    {"question": "to be or not to", "choices": ["be", "see", "go"], "answer": 0},
    {"question": "the king of", "choices": ["denmark", "france", "spain"], "answer": 0},
    {"question": "a witty and", "choices": ["charming film", "dull film", "long film"], "answer": 0},
]
TASK = """task: itnet_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("itnet-clm")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(CAUSAL_TOKENIZER))
    torch.manual_seed(0)
    config = tokenizer_config(tokenizer, is_causal=True, kernel_families=["spectral", "low_rank"])
    model = ITNetForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # away from the near-uniform initial distribution
            parameter.add_(0.3 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def hand_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """lm-eval's own split: the context's tokens, then the tokens the continuation adds to them."""
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    continuation_ids = whole[len(context_ids) :]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
    positions = range(len(context_ids) - 1, len(whole) - 1)
    return sum(logits[p, token].item() for p, token in zip(positions, continuation_ids))


def test_loglikelihoods_equal_the_hand_computation(checkpoint, tmp_path):
    folder, model, tokenizer = checkpoint
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "itnet_local_mc.yaml").write_text(TASK.format(data=data))
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={folder},trust_remote_code=True,dtype=float32",
        tasks=["itnet_local_mc"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        device="cpu",
        batch_size=2,
        log_samples=True,
    )
    samples = sorted(results["samples"]["itnet_local_mc"], key=lambda s: s["doc_id"])
    correct = 0
    for sample, question in zip(samples, QUESTIONS):
        reported = [response[0][0] for response in sample["resps"]]
        expected = [hand_loglikelihood(model, tokenizer, question["question"], " " + c) for c in question["choices"]]
        assert reported == pytest.approx(expected, abs=1e-4), question
        assert len({round(r, 4) for r in reported}) == len(reported)  # the answers are scored, not a template
        correct += int(max(range(len(expected)), key=expected.__getitem__) == question["answer"])
    assert results["results"]["itnet_local_mc"]["acc,none"] == pytest.approx(correct / len(QUESTIONS))
