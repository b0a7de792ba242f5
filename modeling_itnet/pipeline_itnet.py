# Copyright 2026 The modeling_itnet Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The `"itnet-visual-question-answering"` pipeline.

transformers 5 removed its visual-question-answering task (and refuses the names `"visual-question-answering"` and
`"vqa"` with a pointer to chat models); importing `modeling_itnet` registers this task for ITNet's classifier, with
the call of the 4.x pipeline:

```python
>>> from transformers import pipeline
>>> vqa = pipeline("itnet-visual-question-answering", model=model, processor=processor)
>>> vqa(image=image, question="what shape is in the image?", top_k=3)
[{'score': 0.93, 'answer': 'circle'}, {'score': 0.04, 'answer': 'rectangle'}, ...]
```

With a saved checkpoint, `pipeline("itnet-visual-question-answering", model="path/or/repo")` loads the processor
too.
"""

import torch

from .compat_itnet import Pipeline, load_image


class ITNetVisualQuestionAnsweringPipeline(Pipeline):
    r"""Answers a question about an image with an `ITNetForVisualQuestionAnswering` and an `ITNetProcessor`.

    Call with `image` (a PIL image, path or URL) and `question` (a string), or with a list of
    `{"image": ..., "question": ...}` dicts. Returns the `top_k` answers (default 5) of `config.id2label` with
    their sigmoid scores (VQA answers are scored independently, as the model is trained with binary cross-entropy).
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, top_k=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"Unexpected arguments for the itnet-visual-question-answering pipeline: {sorted(kwargs)}."
            )
        postprocess = {}
        if top_k is not None:
            if not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
            postprocess["top_k"] = top_k
        return {}, {}, postprocess

    def __call__(self, image=None, question=None, **kwargs):
        if isinstance(image, (list, tuple)) and question is None:
            return super().__call__(list(image), **kwargs)
        if image is None or question is None:
            raise ValueError("Pass `image` and `question`, or a list of {'image': ..., 'question': ...} dicts.")
        return super().__call__({"image": image, "question": question}, **kwargs)

    def preprocess(self, inputs):
        if not isinstance(inputs, dict) or set(inputs) != {"image", "question"}:
            raise ValueError(f"Each input must be a dict with keys 'image' and 'question', got {inputs!r}.")
        image = load_image(inputs["image"])
        return self.processor(images=image, text=inputs["question"], return_tensors="pt")

    def _forward(self, model_inputs):
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs, top_k=5):
        scores = torch.sigmoid(model_outputs["logits"][0].float())
        top = scores.topk(min(top_k, scores.numel()))
        return [
            {"score": score, "answer": self.model.config.id2label[index]}
            for score, index in zip(top.values.tolist(), top.indices.tolist())
        ]


__all__ = ["ITNetVisualQuestionAnsweringPipeline"]
