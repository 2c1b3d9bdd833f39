"""Tiny models and data for the tests: every test builds what it needs in a second or two."""

import pytest
import torch

from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)
from vanilla_transformer.tokenization import VanillaTransformerTokenizer

VOCAB = 96


def tiny_config(**overrides) -> VanillaTransformerConfig:
    fields = dict(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        max_position_embeddings=64,
        dropout=0.0,
    )
    fields.update(overrides)
    return VanillaTransformerConfig(**fields)


def tiny_seq2seq(attn_implementation="sdpa", seed=0, **overrides):
    torch.manual_seed(seed)
    model = VanillaTransformerForConditionalGeneration(tiny_config(**overrides))
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def tiny_classifier(seed=0, **overrides):
    torch.manual_seed(seed)
    return VanillaTransformerForSequenceClassification(tiny_config(**overrides)).eval()


def random_tokens(batch, length, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB, (batch, length), generator=generator)  # ids 0-3 are special


def padded_batch():
    """Two sources of lengths 9 and 6 (the second right-padded) and two targets of length 5."""
    input_ids = random_tokens(2, 9, seed=1)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 6:] = 0
    attention_mask[1, 6:] = 0
    return input_ids, attention_mask, random_tokens(2, 5, seed=2)


CORPUS = [
    "The cat sat on the mat.",
    "Die Katze sass auf der Matte.",
    "A man rides a bicycle down the street.",
    "Ein Mann faehrt mit dem Fahrrad die Strasse hinunter.",
    "Two dogs play in the snow.",
    "Zwei Hunde spielen im Schnee.",
]


@pytest.fixture(scope="session")
def tokenizer():
    return VanillaTransformerTokenizer.train_from_iterator(CORPUS * 20, vocab_size=320, model_max_length=64)
