"""Fine-tuning with transformers' Trainer and Seq2SeqTrainer works and reports honest losses."""

import pytest
import torch
from datasets import Dataset
from transformers import (
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainingArguments,
)

from conftest import CORPUS, tiny_classifier, tiny_seq2seq

PAIRS = [(CORPUS[i], CORPUS[i + 1]) for i in range(0, len(CORPUS), 2)]


def translation_dataset(tokenizer, repeats=6):
    sources, targets = zip(*(PAIRS * repeats))
    encoded = tokenizer(list(sources), text_target=list(targets), truncation=True)
    return Dataset.from_dict(dict(encoded))


def sentiment_dataset(tokenizer, repeats=6):
    texts = ["a wonderful , moving film", "dull and lifeless", "a joy to watch", "a tedious mess"] * repeats
    encoded = tokenizer(texts, truncation=True)
    return Dataset.from_dict({**encoded, "labels": [1, 0, 1, 0] * repeats})


def arguments(tmp_path, cls=Seq2SeqTrainingArguments, **overrides):
    fields = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=6,
        learning_rate=3e-3,
        adam_beta2=0.98,
        adam_epsilon=1e-9,
        max_steps=30,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    fields.update(overrides)
    return cls(**fields)


def test_seq2seq_trainer_lowers_the_loss(tokenizer, tmp_path):
    model = tiny_seq2seq(vocab_size=len(tokenizer)).train()
    dataset = translation_dataset(tokenizer)
    trainer = Seq2SeqTrainer(
        model=model,
        args=arguments(tmp_path, predict_with_generate=True, generation_max_length=16),
        train_dataset=dataset,
        eval_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.5 * before
    predictions = trainer.predict(dataset.select(range(3)))
    assert predictions.predictions.shape[0] == 3


def test_trainer_fine_tunes_the_classifier(tokenizer, tmp_path):
    model = tiny_classifier(vocab_size=len(tokenizer)).train()
    dataset = sentiment_dataset(tokenizer)
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path, cls=TrainingArguments, max_steps=20),
        train_dataset=dataset,
        eval_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < 0.5 * before


@pytest.mark.parametrize("task", ["seq2seq", "classification"])
def test_gradient_accumulation_reports_the_same_loss_as_one_large_batch(tokenizer, tmp_path, task):
    """Batch 12 in one step, or 2 x 6 accumulated: same logged losses, same weights after the steps."""
    if task == "seq2seq":
        build, dataset, trainer_class, arguments_class = (
            tiny_seq2seq, translation_dataset(tokenizer), Seq2SeqTrainer, Seq2SeqTrainingArguments)
        collator_for = lambda model: DataCollatorForSeq2Seq(tokenizer, model=model)  # noqa: E731
    else:
        build, dataset, trainer_class, arguments_class = (
            tiny_classifier, sentiment_dataset(tokenizer), Trainer, TrainingArguments)
        collator_for = lambda model: DataCollatorWithPadding(tokenizer)  # noqa: E731

    def run(batch_size, accumulation):
        model = build(vocab_size=len(tokenizer)).train()
        trainer = trainer_class(
            model=model,
            args=arguments(tmp_path / f"{batch_size}", cls=arguments_class, max_steps=3,
                           per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation),
            train_dataset=dataset,
            data_collator=collator_for(model),
        )
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        return losses, model

    losses_large, model_large = run(12, 1)
    losses_accumulated, model_accumulated = run(6, 2)
    assert len(losses_large) == 3
    assert losses_accumulated == pytest.approx(losses_large, rel=1e-4)
    for (name, large), accumulated in zip(model_large.named_parameters(), model_accumulated.parameters()):
        torch.testing.assert_close(accumulated, large, rtol=1e-4, atol=1e-5, msg=name)
