"""The VQA model answers from the image, not only from the question: on easy-VQA's colour questions (one question
text, "what color is the shape?", so the question carries no information) a tiny model trained for a few steps
answers well above chance, and falls back to chance when the images are shuffled among the questions.

Why a separate test: on easy-VQA's full question mix (74% yes/no) a 300-step model learns the question prior and
ignores the image (`test_pipelines.py` compares it with that prior); this test isolates the image path.
"""

import torch
from itnet_testing import tiny_builders
from offline_data import EASY_VQA_ANSWERS, load_offline
from transformers import AutoTokenizer

import modeling_itnet
from modeling_itnet import ITNetForVisualQuestionAnswering, ITNetImageProcessorPil

tiny_config, build = tiny_builders()
COLOURS = [
    i
    for i, answer in enumerate(EASY_VQA_ANSWERS)
    if answer in {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}
]


def colour_questions(split, limit, processor):
    """`(pixel_values [N, 3, 16, 16], answer ids [N])` of the first `limit` colour questions of `split`."""
    data = load_offline("easy_vqa")[split]
    questions, labels = list(data["question"]), [label["ids"][0] for label in data["label"]]
    rows = [i for i, question in enumerate(questions) if "color" in question][:limit]
    images = [data[i]["image"] for i in rows]
    return processor(images, return_tensors="pt")["pixel_values"], torch.tensor([labels[i] for i in rows])


def test_colour_questions_are_answered_from_the_image():
    tokenizer = AutoTokenizer.from_pretrained(modeling_itnet.tokenizer_path())
    processor = ITNetImageProcessorPil(size={"height": 16, "width": 16}, do_convert_rgb=True)
    train_pixels, train_labels = colour_questions("train", 1500, processor)
    eval_pixels, eval_labels = colour_questions("validation", 300, processor)
    assert set(train_labels.tolist()) <= set(COLOURS) and len(set(eval_labels.tolist())) >= 5
    text = tokenizer(["what color is the shape?"], return_tensors="pt")

    model = build(ITNetForVisualQuestionAnswering, vocab_size=len(tokenizer), num_labels=len(EASY_VQA_ANSWERS)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        index = torch.randint(len(train_labels), (32,), generator=generator)
        targets = torch.nn.functional.one_hot(train_labels[index], len(EASY_VQA_ANSWERS)).float()
        loss = model(
            input_ids=text["input_ids"].expand(32, -1),
            attention_mask=text["attention_mask"].expand(32, -1),
            pixel_values=train_pixels[index],
            labels=targets,
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    def accuracy(pixels):
        model.eval()
        with torch.no_grad():
            logits = model(
                input_ids=text["input_ids"].expand(len(pixels), -1),
                attention_mask=text["attention_mask"].expand(len(pixels), -1),
                pixel_values=pixels,
            ).logits
        return (logits.argmax(-1) == eval_labels).float().mean().item()

    majority = torch.bincount(eval_labels).max().item() / len(eval_labels)
    shuffled = eval_pixels[torch.randperm(len(eval_pixels), generator=torch.Generator().manual_seed(1))]
    answered, blind = accuracy(eval_pixels), accuracy(shuffled)
    print(
        f"colour questions: {answered:.3f} from the image, {blind:.3f} with shuffled images, majority {majority:.3f}"
    )
    assert answered > max(0.6, majority + 0.3), (answered, majority)
    assert blind < majority + 0.1, (blind, majority)
