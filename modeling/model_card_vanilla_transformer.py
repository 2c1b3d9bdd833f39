"""The model card: one template for the card in every saved folder (README.md, the Hub's model page) and the
repository's model_card.md, rendered with `huggingface_hub.ModelCard` and its Hub metadata
(`ModelCardData`: license, languages, datasets, metrics, tags, pipeline tag, and a model-index with the
measured results when there are some).

A run's results are the `results.json` written by examples/train.py: task, data, command, commit, hardware,
wall time and the final scores of each split.
"""

from huggingface_hub import EvalResult, ModelCard, ModelCardData

PAPER = "Vaswani et al., \"Attention Is All You Need\", NeurIPS 2017"

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

## Use

```python
{{ usage }}
```

## The model

The encoder-decoder Transformer of {{ paper }}, written from scratch on PyTorch and packaged as a
`transformers` model (`model_type = "vanilla_transformer"`). The configuration's defaults are the paper's base
model: d_model 512, 6 + 6 layers, 8 heads, d_ff 2048, dropout 0.1, ReLU, sinusoidal positions, post-LN,
embeddings scaled by sqrt(d_model), one embedding matrix shared by encoder, decoder and the pre-softmax layer.

| paper (section) | code (`modeling_vanilla_transformer.py`) |
|---|---|
| positional encoding (3.5) | `sinusoidal_table`, `SinusoidalPositionalEncoding` |
| scaled dot-product attention (3.2.1) | `eager_attention_forward`, or another implementation through transformers' attention interface (`config._attn_implementation`: "sdpa" by default) |
| multi-head attention (3.2.2), its three uses (3.2.3) | `VanillaTransformerAttention` |
| position-wise feed-forward network (3.3) | `PositionwiseFeedForward` |
| residual connection, dropout, layer normalisation (3.1, 5.4) | `SublayerConnection` |
| encoder and decoder stacks (3.1) | `VanillaTransformerEncoder(Layer)`, `VanillaTransformerDecoder(Layer)` |
| shared embeddings, final linear layer and softmax (3.4) | `VanillaTransformerForConditionalGeneration` |
| label smoothing (5.4) | `label_smoothed_cross_entropy`, `config.label_smoothing` |

## Where it departs from the paper, and the flag for each

| choice | paper | here (default) | flag |
|---|---|---|---|
| layer normalisation | after the residual sum (post-LN) | same | `normalize_before=True`: pre-LN with a final LayerNorm per stack |
| positions | sinusoids, sin on even and cos on odd dimensions | same | `positional_encoding="learned"` (Table 3, row E) |
| embedding scale | multiply by sqrt(d_model) | same | `scale_embedding=False` |
| weight sharing | source, target and output embeddings shared | same | `tie_word_embeddings=False` unties all three |
| attention span | global | same | `attention_window=w`: local self-attention (distance <= w) as a mask; with `attn_implementation="blocked_local"` computed in blocks, in O(L w) |
| attention dropout | not used | 0.0 | `attention_dropout` |
| word dropout | not used | 0.0 | `word_dropout`: in training, a token's embedding is zeroed with this probability (its position stays) |
| label smoothing | 0.1 in training | 0.0 in the config, 0.1 set by the training script | `label_smoothing` |
| initialisation | not stated | Xavier-uniform projections, zero biases, embeddings N(0, d_model^-0.5) | none |
| maximum length | unbounded (sinusoids) | `max_position_embeddings=512`; longer inputs raise a `ValueError` naming the length | `max_position_embeddings` |
| vocabulary | BPE, 37k tokens shared by English and German | byte-level BPE (lossless on any text), its size chosen when training the tokenizer | `vocab_size`, `add_prefix_space` |
| copying from the source | none | off | `copy_mechanism=True`: a pointer over the source tokens mixed into the output distribution (See et al., 2017); the AESLC preset's, whose subject lines are words chosen from the email |
| classification head | none | encoder, masked mean pooling (or max, or first token), dropout, linear | `classifier_pooling` |

## Training data and results

{{ results }}
{% if comparison %}
{{ comparison }}
{% endif %}
## Intended use and limitations

A reference implementation to read, train and compare: the paper's architecture with attention weights that
can be looked at (`output_attentions=True`), trained from scratch on small public datasets. The models
measured here are small (1-8 million parameters), trained for minutes to hours on a CPU, and without
pretraining; they are not meant for production translation or summarisation. They learn the biases of their
data (Multi30k image captions, movie-review phrases, chat dialogues, business emails) and know nothing
outside it. Text longer than `max_position_embeddings` tokens must be truncated.
"""

KIND_TAGS = {"translation": "translation", "summarization": "summarization",
             "classification": "text-classification"}
METRICS = {"translation": ["bleu", "chrf"], "summarization": ["rouge"], "classification": ["accuracy", "f1"]}
METRIC_NAMES = {"bleu": "sacreBLEU", "bleu_lowercase": "sacreBLEU, lower-cased", "chrf": "chrF",
                "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "accuracy": "accuracy",
                "macro_f1": "macro-F1"}


def kind_of(results: dict) -> str:
    return results.get("kind") or (  # older results.json files do not record the kind
        "translation" if "bleu" in first_scores(results) else
        "summarization" if "rouge1" in first_scores(results) else "classification")


def first_scores(results: dict) -> dict:
    return next(iter(results.get("evaluation", {}).values()), {})


def scores_table(results: dict) -> str:
    """One row per scored split: each metric with its 95% bootstrap interval where there is one."""
    splits = results.get("evaluation", {})
    metrics = [m for m in METRIC_NAMES if any(m in scores for scores in splits.values())]
    lines = ["| split | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for split, scores in splits.items():
        cells = []
        for metric in metrics:
            value, interval = scores.get(metric), scores.get(f"{metric}_ci95")
            cells.append("" if value is None else f"{value:.1f}" + (
                f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else ""))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def threads(count: int) -> str:
    return f", {count} thread{'s' if count != 1 else ''}"


def describe_run(results: dict) -> str:
    """What a run was: its data, model size, command, commit, hardware and wall time."""
    hardware = results.get("hardware", {})
    where = hardware.get("gpu") or hardware.get("cpu") or hardware.get("device", "unknown hardware")
    config = results.get("config", {})
    layers = (f"{config.get('encoder_layers')} encoder layers" if kind_of(results) == "classification"
              else f"{config.get('encoder_layers')} + {config.get('decoder_layers')} layers")
    size = (f"{results['parameters']:,} parameters (d_model {config.get('d_model')}, {layers}, "
            f"{config.get('num_attention_heads')} heads, d_ff {config.get('ffn_dim')}, dropout "
            f"{config.get('dropout')})") if results.get("parameters") else ""
    checkpoint = results.get("checkpoint") or f"step {results.get('best_step', 0):,}"
    signatures = sorted({f"`{value}`" for scores in results.get("evaluation", {}).values()
                         for key, value in scores.items() if key.endswith("_signature")})
    lines = [f"Task `{results.get('task')}`, trained from scratch on `{results.get('data')}`" +
             (f"; {size}" if size else "") + ".", "",
             f"- Command: `{results.get('command')}`"]
    lines += [f"- Commit `{str(results.get('commit', 'unknown'))[:7]}`; {where}"
              f"{threads(hardware['cpu_threads']) if hardware.get('cpu_threads') else ''}"
              f"{', ' + hardware['mixed_precision'] if hardware.get('mixed_precision') else ''}; wall time "
              f"{results.get('wall_seconds', 0) / 60:.1f} min; {results.get('steps', 0):,} steps; the checkpoint "
              f"scored: {checkpoint}.",
              "- Scores: the full splits (generation: beam search as in `generation_config.json`); "
              "[95% bootstrap intervals]." + (f" Signatures: {', '.join(signatures)}." if signatures else "")]
    return "\n".join(lines) + "\n\n" + scores_table(results)


def eval_results(results: dict) -> list[EvalResult]:
    """The model-index entries of one run (Hub metadata)."""
    kind = kind_of(results)
    entries = []
    for split, scores in results.get("evaluation", {}).items():
        for metric in METRIC_NAMES:
            if metric in scores:
                entries.append(EvalResult(
                    task_type=KIND_TAGS[kind], dataset_type=results.get("hub_dataset") or results.get("task"),
                    dataset_name=results.get("task"), dataset_split=split, metric_type=metric,
                    metric_name=METRIC_NAMES[metric], metric_value=round(float(scores[metric]), 2)))
    return entries


def render(*, title: str, description: str, usage: str, runs: list[dict], results_text: str = "",
           comparison: str = "", pipeline_tag: str | None = None, languages=None, extra_tags=()) -> ModelCard:
    """The card with its Hub metadata; `runs` are results.json dicts (their scores go to the model-index),
    `results_text` what the results section says besides (or instead of) them."""
    kinds = [kind_of(run) for run in runs]
    datasets = sorted({run["hub_dataset"] for run in runs if run.get("hub_dataset")})
    metrics = sorted({metric for kind in kinds for metric in METRICS[kind]})
    entries = [entry for run in runs for entry in eval_results(run)]
    card_data = ModelCardData(
        language=sorted(set(languages)) if languages else ["en"], license="apache-2.0",
        library_name="transformers", pipeline_tag=pipeline_tag or (KIND_TAGS[kinds[0]] if kinds else None),
        tags=["vanilla-transformer", "encoder-decoder", "custom_code", *extra_tags],
        datasets=datasets or None, metrics=metrics or None,
        model_name=title if entries else None, eval_results=entries or None,
    )
    sections = [results_text] if results_text else []
    sections += [describe_run(run) for run in runs if run.get("describe", True)]
    card = ModelCard.from_template(
        card_data, template_str=TEMPLATE, title=title, description=description, usage=usage, paper=PAPER,
        results="\n\n".join(sections) or "Not trained by the project's training script: no results recorded.",
        comparison=comparison)
    ModelCard(str(card))  # parses its own YAML front matter: raises if the metadata is malformed
    return card


def folder_card(model, location: str, results: dict | None = None, tokenizer_included: bool = True) -> str:
    """The card of a saved folder: how to load it from `location` (a Hub id or the folder), what the model is,
    and, for a folder written by examples/train.py, the run's data and scores."""
    config = model.config
    is_seq2seq = model.can_generate()
    auto = "AutoModelForSeq2SeqLM" if is_seq2seq else "AutoModelForSequenceClassification"
    parameters = sum(p.numel() for p in model.parameters())
    description = (
        f"A {type(model).__name__} of vanilla-transformer, the Transformer of {PAPER}: "
        f"{parameters:,} parameters, d_model {config.d_model}, {config.encoder_layers} + {config.decoder_layers} "
        f"layers, {config.num_attention_heads} heads, d_ff {config.ffn_dim}, vocabulary {config.vocab_size}, "
        f"{config.positional_encoding} positions, {'pre' if config.normalize_before else 'post'}-LN, "
        + ("global" if config.attention_window is None else f"local (window {config.attention_window})")
        + " attention" + (", a copy mechanism (pointer-generator)" if getattr(config, "copy_mechanism", False) else "")
        + ". It loads with `transformers` alone (`trust_remote_code=True`: the model's code is in "
          "this folder).")
    usage = (f"from transformers import {auto}, AutoTokenizer\n\n"
             f"model = {auto}.from_pretrained({location!r}, trust_remote_code=True)\n"
             + (f"tokenizer = AutoTokenizer.from_pretrained({location!r}, trust_remote_code=True)\n"
                if tokenizer_included else ""))
    if is_seq2seq and tokenizer_included:
        usage += ('inputs = tokenizer(["A man is riding a bike."], return_tensors="pt")\n'
                  "print(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True))\n")
    runs = [results] if results else []
    languages = results.get("languages") if results else None
    pipeline_tag = None if runs else ("translation" if is_seq2seq else "text-classification")
    return str(render(title=f"vanilla-transformer: {results['task']}" if results else type(model).__name__,
                      description=description, usage=usage.rstrip("\n"), runs=runs, pipeline_tag=pipeline_tag,
                      languages=languages))
