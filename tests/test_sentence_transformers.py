"""sentence-transformers and setfit on an ITNet encoder checkpoint, as their docs build a model from a Hugging Face
folder (`models.Transformer(DIR)` + `models.Pooling`): `encode()` equals the mean pooling of `ITNetModel` by hand,
training lowers the loss, and save/load is exact. setfit builds its model from the same folder, trains and predicts, and reloads to the same predictions."""

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from itnet_testing import tokenizer_config
from transformers import AutoTokenizer

from modeling_itnet import ITNetModel, tokenizer_path

PAIRS = {
    "anchor": ["a witty film", "a dull film", "the king of denmark", "to be or not to be"] * 4,
    "positive": ["a clever movie", "a boring movie", "hamlet's kingdom", "the question of being"] * 4,
}


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("itnet-encoder")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    torch.manual_seed(0)
    config = tokenizer_config(tokenizer)
    ITNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sentence_model(folder):
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(folder))
    return SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension(), "mean")], device="cpu")


def test_encode_equals_the_mean_pooling_by_hand(encoder_folder):
    model = sentence_model(encoder_folder)
    texts = ["a witty film", "to be or not to be, that is the question"]
    encoded = model.encode(texts, convert_to_tensor=True)
    tokenizer = AutoTokenizer.from_pretrained(encoder_folder)
    itnet = ITNetModel.from_pretrained(encoder_folder).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = itnet(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(encoded, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5, rtol=1e-5)


def test_training_lowers_the_loss_and_save_load_is_exact(encoder_folder, tmp_path):
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    model = sentence_model(encoder_folder)
    loss = MultipleNegativesRankingLoss(model)
    data = Dataset.from_dict(PAIRS)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=20, per_device_train_batch_size=4, learning_rate=3e-3,
        logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
    trainer.train()
    history = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:5]) / 5, history
    model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    texts = ["a witty film", "hamlet's kingdom"]
    assert torch.equal(model.encode(texts, convert_to_tensor=True), reloaded.encode(texts, convert_to_tensor=True))


def test_setfit_trains_and_predicts(encoder_folder, tmp_path):
    import setfit

    texts = ["a witty film", "a charming story", "a clever movie", "a dull film", "a boring story", "a tedious movie"]
    data = Dataset.from_dict({"text": texts * 2, "label": [1, 1, 1, 0, 0, 0] * 2})
    model = setfit.SetFitModel.from_pretrained(str(encoder_folder))  # a Hugging Face folder, as setfit's docs
    args = setfit.TrainingArguments(
        output_dir=str(tmp_path / "run"), batch_size=4, num_epochs=1, max_steps=40, body_learning_rate=1e-3,
        logging_steps=1, seed=0,
    )  # fmt: skip
    trainer = setfit.Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [e["embedding_loss"] for e in trainer.st_trainer.state.log_history if "embedding_loss" in e]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10, losses  # the contrastive loss of the body
    predictions = model.predict(texts)
    assert (torch.as_tensor(predictions) == torch.tensor([1, 1, 1, 0, 0, 0])).float().mean() >= 5 / 6
    model.save_pretrained(str(tmp_path / "saved"))
    reloaded = setfit.SetFitModel.from_pretrained(str(tmp_path / "saved"))
    assert reloaded.predict(texts).tolist() == predictions.tolist()


def test_saved_models_load_without_the_package(encoder_folder, tmp_path):
    """The saved sentence-transformers and setfit folders hold ITNet's module files (remote code): where
    `modeling_itnet` is not installed they load with `trust_remote_code=True` and give the same embeddings and
    predictions."""
    import json
    import subprocess
    import sysconfig

    import setfit
    from test_remote_code import isolated_env, make_isolated_python

    texts = ["a witty film", "a dull film", "hamlet's kingdom"]
    model = sentence_model(encoder_folder)
    model.save(str(tmp_path / "st"))
    classifier = setfit.SetFitModel.from_pretrained(str(encoder_folder))
    data = Dataset.from_dict({"text": texts * 4, "label": [1, 0, 1] * 4})
    setfit.Trainer(
        model=classifier,
        args=setfit.TrainingArguments(output_dir=str(tmp_path / "run"), batch_size=4, max_steps=4, seed=0),
        train_dataset=data,
    ).train()
    classifier.save_pretrained(str(tmp_path / "setfit"))
    python = make_isolated_python(tmp_path / "venv", Path(sysconfig.get_paths()["purelib"]))
    script = (
        "import json, sys\n"
        "from sentence_transformers import SentenceTransformer\n"
        "from setfit import SetFitModel\n"
        "texts = json.loads(sys.argv[3])\n"
        "st = SentenceTransformer(sys.argv[1], trust_remote_code=True, device='cpu')\n"
        "fit = SetFitModel.from_pretrained(sys.argv[2], trust_remote_code=True)\n"
        "assert 'modeling_itnet' not in sys.modules\n"
        "print(json.dumps([st.encode(texts).tolist(), fit.predict(texts).tolist()]))\n"
    )
    done = subprocess.run(
        [python, "-c", script, str(tmp_path / "st"), str(tmp_path / "setfit"), json.dumps(texts)],
        env=isolated_env(tmp_path), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    embeddings, predictions = json.loads(done.stdout.strip().splitlines()[-1])
    assert torch.equal(torch.tensor(embeddings), torch.tensor(model.encode(texts)))
    assert predictions == classifier.predict(texts).tolist()
