"""The sizes the benchmarks measure, and ours, Marian and BART built at exactly the same size from a config
(no download): post-LN, ReLU, tied embeddings. Shared by examples/benchmark/benchmark.py and
benchmark_ctranslate2.py."""

import torch
from transformers import BartConfig, BartForConditionalGeneration, MarianConfig, MarianMTModel

from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration, enable_cpu_kernels

SIZES = {
    "small": dict(vocab=8000, d_model=256, heads=4, ffn=1024, layers=3, batch=32, source=32, target=32),
    "base": dict(vocab=8000, d_model=512, heads=8, ffn=2048, layers=6, batch=32, source=32, target=32),
    "quick": dict(vocab=300, d_model=32, heads=2, ffn=64, layers=1, batch=4, source=8, target=8),
}


def build(name: str, size: dict, max_positions: int = 512) -> torch.nn.Module:
    """Ours, Marian or BART at identical dimensions: post-LN (BART: post-LN too), ReLU, tied embeddings."""
    common = dict(vocab_size=size["vocab"], d_model=size["d_model"], encoder_layers=size["layers"],
                  decoder_layers=size["layers"], max_position_embeddings=max_positions, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, dropout=0.1, attention_dropout=0.0)
    if name.startswith("ours"):  # "ours", "ours+kernels" (enable_cpu_kernels), "ours+dropout" (one kernel), ...
        config = VanillaTransformerConfig(**common, num_attention_heads=size["heads"], ffn_dim=size["ffn"])
        model = VanillaTransformerForConditionalGeneration(config)
        kernels = name.partition("+")[2]
        if kernels:
            enable_cpu_kernels(model, **({} if kernels == "kernels" else {"kernels": (kernels,)}))
        return model
    per_stack = dict(encoder_attention_heads=size["heads"], decoder_attention_heads=size["heads"],
                     encoder_ffn_dim=size["ffn"], decoder_ffn_dim=size["ffn"], activation_function="relu",
                     activation_dropout=0.0, scale_embedding=True, tie_word_embeddings=True)
    if name == "marian":
        return MarianMTModel(MarianConfig(**common, **per_stack, share_encoder_decoder_embeddings=True))
    return BartForConditionalGeneration(BartConfig(**common, **per_stack))
