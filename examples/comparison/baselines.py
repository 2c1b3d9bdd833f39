"""The models ours is compared with (see model_card.md, "Side by side"): architectures from transformers,
built from a config at our parameter count and trained from scratch by train.py, or, for users who are
online, any Hub checkpoint.

    t5    T5ForConditionalGeneration / T5ForSequenceClassification
    gpt2  GPT2LMHeadModel reading "source <s> target", loss on the target only / GPT2ForSequenceClassification
    bert  EncoderDecoderModel of a BertModel encoder and a BertLMHeadModel decoder with cross-attention /
          BertForSequenceClassification (reading <s> first, in the place of BERT's [CLS])
    lstm  LSTM encoder-decoder with attention / LSTM classifier (examples/comparison/lstm_baseline.py)

Each model is wrapped so that train.py and evaluation.py treat it exactly like ours: the same batches
(input_ids, attention_mask, labels), the same loss (label-smoothed cross-entropy, summed and divided by the
number of target tokens or examples of the step), and generate() returning the target tokens only.

Matching the size: the Transformers keep our width, heads and depth (GPT-2: one stack as deep as our
encoder and decoder together), and their FFN width is chosen so that the parameter count is the nearest to
ours; the LSTMs (2 layers) get the nearest width. `build_baseline` refuses a model more than 10% away.
"""

import json
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertLMHeadModel,
    BertModel,
    EncoderDecoderModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    T5Config,
    T5ForConditionalGeneration,
    T5ForSequenceClassification,
)
from transformers.modeling_outputs import Seq2SeqLMOutput, SequenceClassifierOutput
from transformers.models.t5.modeling_t5 import T5Attention, T5DenseActDense

from common.checkpointing import load_averaged_weights

from . import lstm_baseline
from vanilla_transformer.modeling import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)
from vanilla_transformer.modeling.modeling_vanilla_transformer import label_smoothed_cross_entropy, shift_tokens_right

ARCHITECTURES = ("ours", "t5", "gpt2", "bert", "lstm")
SIZE_TOLERANCE = 0.10
METADATA = "baseline.json"  # written next to config.json: which wrapper and class to rebuild on loading


class BaselineSizeError(ValueError):
    """No size of the architecture comes within 10% of our parameter count."""


def is_hub_id(baseline: str) -> bool:
    return baseline not in ARCHITECTURES


# ---------------------------------------------------------------------------------------------------
# Wrappers: one interface for every model
# ---------------------------------------------------------------------------------------------------


class Wrapper(nn.Module):
    """A transformers model behind the interface of ours; saves and loads as the wrapped model's folder."""

    kind = ""

    def __init__(self, model, baseline: str, **settings):
        super().__init__()
        self.model, self.baseline, self.settings = model, baseline, settings

    @property
    def config(self):
        return self.model.config

    @property
    def generation_config(self):
        return self.model.generation_config

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def save_pretrained(self, folder, **kwargs) -> None:
        self.model.save_pretrained(folder, **kwargs)
        metadata = {"baseline": self.baseline, "wrapper": self.kind, "model_class": type(self.model).__name__,
                    **self.settings}
        (Path(folder) / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


class Seq2SeqWrapper(Wrapper):
    """Any encoder-decoder: decoder input = labels shifted right; the loss is computed here, like ours."""

    kind = "seq2seq"

    def forward(self, input_ids, attention_mask=None, labels=None, num_items_in_batch=None, **unused):
        start = self.config.decoder_start_token_id
        if start is None:
            start = self.generation_config.decoder_start_token_id
        decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, start)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                            use_cache=False).logits
        loss = label_smoothed_cross_entropy(logits, labels, self.settings["label_smoothing"], num_items_in_batch)
        return Seq2SeqLMOutput(loss=loss, logits=logits)

    def generate(self, **kwargs):
        return self.model.generate(**kwargs)


class ContinuationOnly(LogitsProcessor):
    """Runs `processor` on the generated tokens alone, not on the prompt they continue."""

    def __init__(self, processor: LogitsProcessor, prompt_length: int):
        self.processor, self.prompt_length = processor, prompt_length

    def __call__(self, input_ids, scores):
        return self.processor(input_ids[:, self.prompt_length:], scores)


class DecoderOnlyWrapper(Wrapper):
    """A causal LM reading "source <sep> target": the loss covers the target tokens only, and generate()
    continues "source <sep>" and returns what follows the separator."""

    kind = "decoder-only"

    def concatenate(self, input_ids, attention_mask, labels):
        """Right-padded rows of source + sep + target, with next-token labels on the target positions."""
        sep, pad = self.settings["sep_token_id"], self.config.pad_token_id
        rows, row_labels = [], []
        for ids, mask, target in zip(input_ids, attention_mask, labels):
            source, target = ids[mask.bool()], target[target != -100]
            rows.append(torch.cat([source, source.new_tensor([sep]), target]))
            # The logit at position p predicts token p + 1: the separator predicts the first target token.
            row_labels.append(torch.cat([torch.full_like(source, -100), target, target.new_tensor([-100])]))
        sequences = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad)
        lengths = torch.tensor([len(row) for row in rows], device=sequences.device)
        mask = (torch.arange(sequences.shape[1], device=sequences.device)[None, :] < lengths[:, None]).long()
        return sequences, mask, nn.utils.rnn.pad_sequence(row_labels, batch_first=True, padding_value=-100)

    def forward(self, input_ids, attention_mask=None, labels=None, num_items_in_batch=None, **unused):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        sequences, mask, next_token_labels = self.concatenate(input_ids, attention_mask, labels)
        logits = self.model(input_ids=sequences, attention_mask=mask, use_cache=False).logits
        loss = label_smoothed_cross_entropy(logits, next_token_labels, self.settings["label_smoothing"],
                                            num_items_in_batch)
        return Seq2SeqLMOutput(loss=loss, logits=logits)

    def generate(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        sep, pad = self.settings["sep_token_id"], self.config.pad_token_id
        prompts = [torch.cat([ids[mask.bool()], ids.new_tensor([sep])]) for ids, mask in zip(input_ids, attention_mask)]
        longest = max(len(p) for p in prompts)
        prompt_ids = input_ids.new_full((len(prompts), longest), pad)
        prompt_mask = torch.zeros_like(prompt_ids)
        for row, prompt in enumerate(prompts):  # left padding: every prompt ends where generation starts
            prompt_ids[row, longest - len(prompt):] = prompt
            prompt_mask[row, longest - len(prompt):] = 1
        # The repeat guard is the encoder-decoders': no n-gram twice in the output. transformers' own processor
        # would count the prompt too, and forbid the output every source token (size 1) it should copy.
        guard = kwargs.pop("no_repeat_ngram_size", None)
        guard = self.generation_config.no_repeat_ngram_size if guard is None else guard
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        if guard:
            processors.append(ContinuationOnly(NoRepeatNGramLogitsProcessor(guard), longest))
        generated = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, pad_token_id=pad,
                                        eos_token_id=self.config.eos_token_id, no_repeat_ngram_size=0,
                                        logits_processor=processors, **kwargs)
        return generated[:, longest:]


class ClassifierWrapper(Wrapper):
    kind = "classification"

    def forward(self, input_ids, attention_mask=None, labels=None, num_items_in_batch=None, **unused):
        if self.settings.get("prepend_token_id") is not None:  # BERT pools the first position ([CLS])
            first = input_ids.new_full((input_ids.shape[0], 1), self.settings["prepend_token_id"])
            input_ids = torch.cat([first, input_ids], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat([torch.ones_like(first), attention_mask], dim=1)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = None if labels is None else label_smoothed_cross_entropy(logits, labels, 0.0, num_items_in_batch)
        return SequenceClassifierOutput(loss=loss, logits=logits)


WRAPPERS = {wrapper.kind: wrapper for wrapper in (Seq2SeqWrapper, DecoderOnlyWrapper, ClassifierWrapper)}


# ---------------------------------------------------------------------------------------------------
# Architectures at our size
# ---------------------------------------------------------------------------------------------------


def architecture_builders(ours, task, tokenizer) -> dict:
    """For each architecture: (a function knob -> model, the knob values to try, the knob's name)."""
    c = ours.config
    d, heads, dropout = c.d_model, c.num_attention_heads, c.dropout
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
    vocab, classify = len(tokenizer), task.head == "classification"
    labels = task.label_config() if classify else {}
    ffn_widths = range(16, 8 * c.ffn_dim + 1, 16)

    def t5(ffn):
        # T5's classifier reads the decoder's state at </s>: one decoder layer, since ours classifies with an
        # encoder alone (with as many decoder layers as ours has, it could not come within 10% of our size).
        config = T5Config(vocab_size=vocab, d_model=d, d_kv=d // heads, d_ff=ffn, num_heads=heads,
                          num_layers=c.encoder_layers, num_decoder_layers=1 if classify else c.decoder_layers,
                          dropout_rate=dropout,
                          feed_forward_proj="relu", decoder_start_token_id=tokenizer.bos_token_id, **special,
                          **labels)
        model = T5ForSequenceClassification(config) if classify else T5ForConditionalGeneration(config)
        # T5 drops out at one rate everywhere, also on the attention weights and inside the feed-forward
        # network; ours (and BERT and GPT-2 as built here) use attention_dropout there and nothing inside the
        # FFN. The same dropout for every model: T5's rate on its residual branches and embeddings only.
        for module in model.modules():
            if isinstance(module, T5Attention):
                module.dropout = c.attention_dropout
            elif isinstance(module, T5DenseActDense):
                module.dropout = nn.Dropout(0.0)
        return model

    def bert_config(ffn, layers, **extra):
        return BertConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=ffn, hidden_dropout_prob=dropout,
                          attention_probs_dropout_prob=c.attention_dropout, type_vocab_size=1,
                          max_position_embeddings=c.max_position_embeddings + 1, **special, **extra)

    def bert(ffn):
        if classify:
            return BertForSequenceClassification(bert_config(ffn, c.encoder_layers, **labels))
        encoder = BertModel(bert_config(ffn, c.encoder_layers), add_pooling_layer=False)
        decoder = BertLMHeadModel(bert_config(ffn, c.decoder_layers, is_decoder=True, add_cross_attention=True))
        model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
        model.config.update(dict(decoder_start_token_id=tokenizer.bos_token_id, vocab_size=vocab, **special))
        return model

    def gpt2(ffn):  # one stack as deep as our encoder and decoder together
        layers = c.encoder_layers + (0 if classify else c.decoder_layers)
        positions = task.max_source_length + 1 + max(task.max_target_length, task.max_new_tokens)
        config = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=d, n_layer=layers, n_head=heads,
                            n_inner=ffn, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=c.attention_dropout,
                            **special, **labels)
        return GPT2ForSequenceClassification(config) if classify else GPT2LMHeadModel(config)

    def lstm(width):
        config = lstm_baseline.LSTMConfig(vocab_size=vocab, hidden_size=width, num_layers=2, dropout=dropout,
                                          decoder_start_token_id=tokenizer.bos_token_id, **special, **labels)
        model_class = (lstm_baseline.LSTMForSequenceClassification if classify
                       else lstm_baseline.LSTMForConditionalGeneration)
        return model_class(config)

    return {
        "t5": (t5, ffn_widths, "d_ff"),
        "bert": (bert, ffn_widths, "intermediate_size"),
        "gpt2": (gpt2, ffn_widths, "n_inner"),
        "lstm": (lstm, range(8, 4 * d + 1, 4), "hidden_size"),  # even: two directions of half the width
    }


def count_parameters(build, knob) -> int:
    with torch.device("meta"):  # no memory, no initialisation: only the shapes
        return build(knob).num_parameters()


def build_baseline(architecture: str, ours, task, tokenizer, label_smoothing: float):
    """`architecture` at the parameter count of `ours` (within 10%), wrapped; also returns the chosen knob."""
    build, knobs, knob_name = architecture_builders(ours, task, tokenizer)[architecture]
    target = ours.num_parameters()
    knob = min(knobs, key=lambda k: abs(count_parameters(build, k) - target))
    model = build(knob)
    if abs(model.num_parameters() - target) > SIZE_TOLERANCE * target:
        raise BaselineSizeError(f"{architecture}: the nearest size ({knob_name}={knob}, {model.num_parameters():,} "
                         f"parameters) is more than 10% away from ours ({target:,})")
    if task.head != "classification":
        model.generation_config.update(num_beams=task.num_beams, length_penalty=task.length_penalty,
                                       no_repeat_ngram_size=task.no_repeat_ngram_size or None,
                                       max_new_tokens=task.max_new_tokens, max_length=None,
                                       decoder_start_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id)
    return wrap(model, architecture, task, tokenizer, label_smoothing), {knob_name: knob}


def wrap(model, baseline: str, task, tokenizer, label_smoothing: float) -> Wrapper:
    if task.head == "classification":
        first = tokenizer.bos_token_id if isinstance(model, BertForSequenceClassification) and not is_hub_id(
            baseline) else None
        return ClassifierWrapper(model, baseline, prepend_token_id=first)
    if model.config.is_encoder_decoder:
        return Seq2SeqWrapper(model, baseline, label_smoothing=label_smoothing)
    sep = next(t for t in (tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None)
    return DecoderOnlyWrapper(model, baseline, label_smoothing=label_smoothing, sep_token_id=sep)


def from_hub(model_id: str, task, label_smoothing: float):
    """A pretrained checkpoint (Hub id or local folder) and its own tokenizer, for fine-tuning."""
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    if tokenizer.pad_token_id is None:  # GPT-2 has none; its end-of-text token pads (and is masked out)
        tokenizer.pad_token = tokenizer.eos_token
    if task.head == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(model_id, **task.label_config())
        model.config.pad_token_id = tokenizer.pad_token_id
    elif AutoConfig.from_pretrained(model_id).is_encoder_decoder:
        model = AutoModelForSeq2SeqLM.from_pretrained(model_id)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_id)
        model.config.pad_token_id = tokenizer.pad_token_id
    return wrap(model, model_id, task, tokenizer, label_smoothing), tokenizer


# ---------------------------------------------------------------------------------------------------
# Loading a saved folder
# ---------------------------------------------------------------------------------------------------


def load_checkpoint_average(model: nn.Module, checkpoint_folders) -> None:
    """Load the mean of train.py checkpoints into ours or a wrapped baseline (whose checkpoints name the
    wrapped model's weights "model.<name>", the wrapper's attribute)."""
    if isinstance(model, Wrapper):
        load_averaged_weights(model.model, checkpoint_folders, prefix="model.")
    else:
        load_averaged_weights(model, checkpoint_folders)


def load_model(folder, task):
    """Ours or a wrapped baseline, from a folder written by train.py."""
    folder = Path(folder)
    if not (folder / METADATA).exists():
        model_class = (VanillaTransformerForSequenceClassification if task.head == "classification"
                       else VanillaTransformerForConditionalGeneration)
        return model_class.from_pretrained(folder)
    metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    import transformers

    ours = {cls.__name__: cls for cls in (VanillaTransformerForConditionalGeneration,
                                          VanillaTransformerForSequenceClassification)}  # ours, fine-tuned
    name = metadata["model_class"]
    model_class = getattr(lstm_baseline, name, None) or ours.get(name) or getattr(transformers, name)
    settings = {k: v for k, v in metadata.items() if k not in ("baseline", "wrapper", "model_class")}
    return WRAPPERS[metadata["wrapper"]](model_class.from_pretrained(folder), metadata["baseline"], **settings)
