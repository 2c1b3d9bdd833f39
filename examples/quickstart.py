"""Quick start: train a small Transformer to "translate" dates written by people into ISO 8601.

    "Tuesday, March 5, 2024" -> "2024-03-05"

The data are generated here (no download), the tokenizer is trained on them, the model is trained with
transformers' Seq2SeqTrainer, scored by exact match on held-out dates, and saved as a complete,
Hub-ready folder that loads with nothing but transformers. A few minutes on a 2-core CPU.
"""

import argparse
import datetime
import random
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, pipeline

from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration
from vanilla_transformer.tokenization import VanillaTransformerTokenizer

FORMATS = [
    "%A, %B %d, %Y",  # Tuesday, March 05, 2024
    "%B %d, %Y",  # March 05, 2024
    "%d %B %Y",  # 05 March 2024
    "%d %b %Y",  # 05 Mar 2024
    "%a %d %b %Y",  # Tue 05 Mar 2024
    "%b %d %Y",  # Mar 05 2024
    "%Y, %B %d",  # 2024, March 05
    "%A %d %B %Y",  # Tuesday 05 March 2024
]


def human_date(date: datetime.date, rng: random.Random) -> str:
    text = date.strftime(rng.choice(FORMATS))
    if rng.random() < 0.5:  # people rarely write the leading zero of the day
        text = text.replace(f"{date.day:02d}", str(date.day), 1)
    return text.lower() if rng.random() < 0.2 else text


def date_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    first, days = datetime.date(1950, 1, 1), 100 * 365
    dates = [first + datetime.timedelta(days=rng.randrange(days)) for _ in range(count)]
    return [(human_date(date, rng), date.isoformat()) for date in dates]


def exact_match(model, tokenizer, pairs, batch_size=250) -> tuple[float, list[str]]:
    predictions = []
    model.eval()
    for start in range(0, len(pairs), batch_size):
        sources = [source for source, _ in pairs[start : start + batch_size]]
        batch = tokenizer(sources, return_tensors="pt", padding=True)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=16, num_beams=1)
        predictions += tokenizer.batch_decode(generated, skip_special_tokens=True)
    correct = sum(prediction == target for prediction, (_, target) in zip(predictions, pairs))
    return correct / len(pairs), predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/dates", help="where the trained model folder is saved")
    parser.add_argument("--train-examples", type=int, default=20000)
    parser.add_argument("--test-examples", type=int, default=500)
    parser.add_argument("--max-steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    torch.manual_seed(args.seed)

    pairs = date_pairs(args.train_examples + args.test_examples, seed=args.seed)
    train_pairs, test_pairs = pairs[: args.train_examples], pairs[args.train_examples :]
    tokenizer = VanillaTransformerTokenizer.train_from_iterator(
        [text for pair in train_pairs for text in pair], vocab_size=600, model_max_length=64
    )

    config = VanillaTransformerConfig(
        vocab_size=len(tokenizer),
        d_model=128,
        encoder_layers=2,
        decoder_layers=2,
        num_attention_heads=4,
        ffn_dim=512,
        max_position_embeddings=64,
        label_smoothing=0.1,
    )
    model = VanillaTransformerForConditionalGeneration(config)
    print(f"model: {model.num_parameters():,} parameters; tokenizer: {len(tokenizer)} tokens")

    sources, targets = zip(*train_pairs)
    train_dataset = Dataset.from_dict(dict(tokenizer(list(sources), text_target=list(targets))))
    training_args = Seq2SeqTrainingArguments(
        output_dir=str(Path(args.output_dir) / "trainer"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.max_steps,
        learning_rate=2e-3,
        adam_beta1=0.9,
        adam_beta2=0.98,
        adam_epsilon=1e-9,  # Section 5.3 of the paper
        lr_scheduler_type="inverse_sqrt",
        warmup_steps=100,
        bf16=True,  # the CPU multiplies bfloat16 matrices several times faster than float32
        logging_steps=100,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    trainer.train()

    accuracy, predictions = exact_match(model, tokenizer, test_pairs)
    print(f"\nexact match on {len(test_pairs)} held-out dates: {accuracy:.1%}")
    for (source, target), prediction in list(zip(test_pairs, predictions))[:8]:
        mark = "ok " if prediction == target else "BAD"
        print(f"  {mark} {source!r:>34} -> {prediction!r} (expected {target!r})")

    model.generation_config.max_new_tokens = 16  # an ISO date is 10 characters: saved in generation_config.json
    model.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    print(f"\nsaved a Hub-ready model folder to {args.output_dir}/")

    # The folder loads as any Hub repository would, here through the translation pipeline it ships.
    translate = pipeline("translation", model=args.output_dir, trust_remote_code=True)
    for text in ["Tuesday, March 5, 2024", "1 jan 2000", "December 31, 1999"]:
        print(f"  pipeline: {text!r} -> {translate(text)[0]['translation_text']!r}")
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
