"""Configuration of the Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Every default is the paper's base model (Table 3, row "base"); every deviation from the paper is a
field whose default is the paper's choice.
"""

from transformers import PreTrainedConfig

POSITIONAL_ENCODINGS = ("sinusoidal", "learned")
CLASSIFIER_POOLINGS = ("mean", "max", "first")


class VanillaTransformerConfig(PreTrainedConfig):
    r"""
    Args:
        vocab_size: size of the one vocabulary shared by source and target (Section 5.1).
        d_model: width of every sub-layer output and embedding (Section 3.1).
        encoder_layers / decoder_layers: N, the number of stacked layers (Section 3.1).
        num_attention_heads: h, parallel attention heads; d_model must be divisible by it (Section 3.2.2).
        ffn_dim: d_ff, inner width of the position-wise feed-forward network (Section 3.3).
        dropout: P_drop, on each sub-layer output and on the embedding sums (Section 5.4).
        attention_dropout: dropout on the attention weights (not in the paper, hence 0).
        word_dropout: in training, the probability that a token's embedding is zeroed before its position is
            added, so the model sees the position but not the word (the word dropout of Iyyer et al., 2015, "Deep
            Unordered Composition Rivals Syntactic Methods for Text Classification"; not in the paper, hence 0).
        activation_function: the feed-forward non-linearity; ReLU in the paper (Equation 2).
        max_position_embeddings: the longest sequence the model accepts.
        positional_encoding: "sinusoidal" (Section 3.5) or "learned" (the variant of Table 3, row E).
        normalize_before: False = LayerNorm(x + Sublayer(x)) as in the paper (post-LN); True = pre-LN,
            x + Sublayer(LayerNorm(x)) with a final LayerNorm, which trains deeper stacks more stably.
        scale_embedding: multiply embeddings by sqrt(d_model) (Section 3.4).
        layernorm_embedding: a LayerNorm on the sum of token embeddings and positional encodings, before its
            dropout (not in the paper; BERT and BART have one).
        tie_word_embeddings: share the source, target and pre-softmax weights (Section 3.4).
        attention_window: None = global (soft) attention over all positions; an integer w = local attention
            in self-attention, where a position attends only to positions at distance <= w (a mask over the
            full matrix; with attn_implementation="blocked_local" it is computed in blocks, in O(L w)).
        label_smoothing: epsilon_ls of the training loss (the paper trains with 0.1, Section 5.4); for the
            classification head, of its cross-entropy over the classes.
        classifier_pooling: how the sequence-classification head pools the encoder output: "mean" or "max" over
            the real (unpadded) positions, or "first" (the first position).
        copy_mechanism: mix a copy distribution over the source's tokens into the output distribution, so that
            the decoder can write a source token by pointing at it (the pointer-generator of See et al., 2017,
            "Get To The Point"; not in the paper, hence False). Sequence-to-sequence model only.
    """

    model_type = "vanilla_transformer"
    keys_to_ignore_at_inference = ["past_key_values"]
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "decoder_layers"}

    vocab_size: int = 37000
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    num_attention_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    word_dropout: float = 0.0
    activation_function: str = "relu"
    max_position_embeddings: int = 512
    positional_encoding: str = "sinusoidal"
    normalize_before: bool = False
    scale_embedding: bool = True
    layernorm_embedding: bool = False
    tie_word_embeddings: bool = True
    attention_window: int | None = None
    label_smoothing: float = 0.0
    classifier_pooling: str = "mean"
    copy_mechanism: bool = False
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True
    use_cache: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_fields()

    def _check_fields(self):
        from transformers.activations import ACT2FN

        def fail(field, why):
            raise ValueError(f"VanillaTransformerConfig.{field}={getattr(self, field)!r}: {why}")

        for field in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "num_attention_heads",
                      "ffn_dim", "max_position_embeddings"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, "must be a positive integer")
        if self.d_model % self.num_attention_heads != 0:
            fail("d_model", f"must be divisible by num_attention_heads={self.num_attention_heads}")
        for field in ("dropout", "attention_dropout", "word_dropout", "label_smoothing"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(field, "must be in [0, 1)")
        if self.activation_function not in ACT2FN:
            fail("activation_function", f"unknown; choose one of {sorted(ACT2FN)}")
        if self.positional_encoding not in POSITIONAL_ENCODINGS:
            fail("positional_encoding", f"must be one of {POSITIONAL_ENCODINGS}")
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            fail("classifier_pooling", f"must be one of {CLASSIFIER_POOLINGS}")
        if self.attention_window is not None and (
            not isinstance(self.attention_window, int) or isinstance(self.attention_window, bool)
            or self.attention_window < 0
        ):
            fail("attention_window", "must be None (global attention) or a non-negative integer")
        if not isinstance(self.copy_mechanism, bool):
            fail("copy_mechanism", "must be True or False")
        for field in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, field)
            if value is not None and not 0 <= value < self.vocab_size:
                fail(field, f"must be a token id in [0, vocab_size={self.vocab_size})")


__all__ = ["VanillaTransformerConfig"]
