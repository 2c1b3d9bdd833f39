"""The tokenizer: byte-level BPE with one vocabulary shared by source and target (Section 5.1 of the paper
uses byte-pair encoding with a shared source-target vocabulary of about 37,000 tokens).

Byte-level means every Unicode string is encoded as UTF-8 bytes first, so nothing is ever unknown and
`decode(encode(text)) == text` for any text. A `</s>` is appended to every sequence.

With `add_prefix_space=True` a word is the same token wherever it stands: the first word of the text and of
every line is encoded with a leading space, like a word inside a sentence. Without it, a name that begins a
dialogue line ("Rob: ...") and the same name inside a summary ("... and Rob") are two unrelated tokens, and a
summariser must learn the pair for every name before it can copy one. Line breaks are normalised to "\n"
(without the spaces around them) and one leading space of the text is not kept; apart from that, decoding
still gives the text back.
"""

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import TokenizersBackend

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


class VanillaTransformerTokenizer(TokenizersBackend):
    """A fast tokenizer on the `tokenizers` library. Train one with `train_from_iterator`; save and load it
    like any transformers tokenizer. `tokenizer(source, text_target=target)` gives `labels` too."""

    model_input_names = ["input_ids", "attention_mask"]

    @classmethod
    def train_from_iterator(
        cls,
        texts: Iterable[str],
        vocab_size: int = 37000,
        min_frequency: int = 2,
        model_max_length: int = 512,
        add_prefix_space: bool = False,
        show_progress: bool = False,
    ) -> "VanillaTransformerTokenizer":
        """Learn a byte-level BPE vocabulary of at most `vocab_size` tokens from `texts` (source and target
        sentences together, for the shared vocabulary). Special tokens get ids 0-3: <pad>, <s>, </s>, <unk>,
        matching the defaults of `VanillaTransformerConfig`. `add_prefix_space`: see the module docstring."""
        special_tokens = list(SPECIAL_TOKENS.values())
        if vocab_size < len(special_tokens) + 256:
            raise ValueError(f"vocab_size={vocab_size}: must be at least {len(special_tokens) + 256} "
                             "(4 special tokens and the 256 bytes)")
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        backend.decoder = decoders.ByteLevel()
        if add_prefix_space:
            # "\n " before each line's first word gives it the space; decoding removes what encoding added.
            backend.normalizer = normalizers.Replace(Regex(r"[ \t]*\r?\n[ \t]*"), "\n ")
            backend.decoder = decoders.Sequence(
                [decoders.ByteLevel(), decoders.Replace("\n ", "\n"), decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        eos = SPECIAL_TOKENS["eos_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
        )
        return cls(
            tokenizer_object=backend,
            model_max_length=model_max_length,
            clean_up_tokenization_spaces=False,  # keep decoding lossless
            split_special_tokens=True,  # a "</s>" typed in the text is text, not the end-of-sequence token
            add_prefix_space=add_prefix_space,
            **SPECIAL_TOKENS,
        )

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also writes this file and an `auto_map`, so the folder loads with `AutoTokenizer` and
        `trust_remote_code=True` where this package is not installed."""
        import json
        import shutil
        from pathlib import Path

        saved = super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        source = Path(__file__)
        if source.resolve() != (folder / source.name).resolve():
            shutil.copyfile(source, folder / source.name)
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["auto_map"] = {"AutoTokenizer": [None, f"{source.stem}.{type(self).__name__}"]}
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return saved


__all__ = ["VanillaTransformerTokenizer"]
