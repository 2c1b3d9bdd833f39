"""Building ours for a task, and the paper's optimiser."""

import torch
from transformers.optimization import Adafactor

from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)

from .tasks import Task


def apply_overrides(config: VanillaTransformerConfig, overrides: str) -> str | None:
    """Sets 'name=value,...' on the config through `PreTrainedConfig.update_from_string`, which refuses a name
    the config does not have, then checks the result. update_from_string cannot type a field whose value is
    None (attention_window), so those are set here; `attn_implementation` is not a config field and is returned."""
    items = []
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config_overrides: {item!r} is not name=value")
        items.append((name.strip(), value.strip()))
    attn_implementation = dict(items).pop("attn_implementation", None)
    typed = []
    for name, value in items:
        if name == "attn_implementation":
            continue
        if hasattr(config, name) and getattr(config, name) is None:
            setattr(config, name, None if value.lower() == "none" else int(value))
        else:
            typed.append(f"{name}={value}")
    if typed:
        try:
            config.update_from_string(",".join(typed))
        except ValueError as error:
            raise ValueError(f"--config_overrides: {error}") from None
    config._check_fields()
    return attn_implementation


def build_model(task: Task, tokenizer, config_overrides: str = ""):
    """Ours at the task's size, with `config_overrides` ('d_model=128,dropout=0.3') applied."""
    config = VanillaTransformerConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.bos_token_id,
        **{"max_position_embeddings": max(task.max_source_length, task.max_target_length),
           **task.defaults.get("model", {})},
        **({} if task.head == "classification" else {"label_smoothing": 0.1}),
        **(task.label_config() if task.head == "classification" else {}))
    attn_implementation = apply_overrides(config, config_overrides)
    if task.head == "classification":
        model = VanillaTransformerForSequenceClassification(config)
    else:
        model = VanillaTransformerForConditionalGeneration(config)
        model.generation_config.update(num_beams=task.num_beams, length_penalty=task.length_penalty,
                                       no_repeat_ngram_size=task.no_repeat_ngram_size or None,
                                       max_new_tokens=task.max_new_tokens, max_length=None)
    if attn_implementation:
        model.set_attn_implementation(attn_implementation)
    return model


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, name: str = "adam") -> torch.optim.Optimizer:
    """Adam with betas (0.9, 0.98) and eps 1e-9 (Section 5.3). With weight decay: AdamW's decoupled decay,
    on the weight matrices and embeddings only (decaying biases and LayerNorm gains only shrinks them).

    name="adafactor": T5's optimiser (Shazeer & Stern 2018, as transformers implements it), each step scaled to
    the size of the parameter it changes (`scale_parameter`), with `lr` from the shared schedule. T5's
    initialisation assumes it: its word vectors start with standard deviation 1 and its query projections near
    (d_model d_kv)^-1/2 with no 1/sqrt(d_kv) in the attention, so Adam's steps of one size for all move the word
    vectors comparatively little and the queries comparatively much (on Multi30k its attention collapsed)."""
    if name == "adafactor":
        return Adafactor(model.parameters(), lr=lr, weight_decay=weight_decay, scale_parameter=True,
                         relative_step=False, warmup_init=False)
    if name != "adam":
        raise ValueError(f"optimizer {name!r}: expected 'adam' or 'adafactor'")
    adam = dict(lr=lr, betas=(0.9, 0.98), eps=1e-9)
    if not weight_decay:
        return torch.optim.Adam(model.parameters(), **adam)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                              {"params": vectors, "weight_decay": 0.0}], **adam)
