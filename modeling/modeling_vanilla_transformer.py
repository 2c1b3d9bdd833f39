"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), as a transformers model.

Read top to bottom, this file follows Figure 1 of the paper: positional encoding (Section 3.5),
scaled dot-product and multi-head attention (3.2), the position-wise feed-forward network (3.3),
residual connections with layer normalisation (3.1, 5.4), the encoder and decoder stacks (3.1),
shared embeddings and the final linear layer + softmax (3.4). Deviations from the paper are config
flags whose defaults are the paper's choices (see `VanillaTransformerConfig`).

Shapes in comments: B batch, T target (query) length, S source (key) length, H heads, Dh head width.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    SequenceClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

from ..configuration.configuration_vanilla_transformer import VanillaTransformerConfig
from .attention_vanilla_transformer import LocalWindowMask, local_window, local_window_mask
from .hub_vanilla_transformer import export_hub_code, push_folder_to_hub

logger = logging.get_logger(__name__)


# ---------------------------------------------------------------------------------------------------
# Inputs: the decoder's teacher-forced input, and checks that name what does not fit
# ---------------------------------------------------------------------------------------------------


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder input = target shifted right by one, starting with the start token ("teacher forcing")."""
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


def check_sequence_length(length: int, config: VanillaTransformerConfig, what: str) -> None:
    if length > config.max_position_embeddings:
        raise ValueError(
            f"{what} has length {length}, longer than max_position_embeddings={config.max_position_embeddings}; "
            "truncate the input (e.g. tokenizer(..., truncation=True)) or build the model with a larger "
            "max_position_embeddings."
        )


def check_inputs(config: VanillaTransformerConfig, **tensors: torch.Tensor | None) -> None:
    """Inputs that do not fit together are an error naming them, not a broadcast or an index error deep inside:
    batch sizes that differ, an attention mask of another shape than its ids, and ids outside the vocabulary
    (a tokenizer that is not the model's). Shapes are checked always; id values only on the CPU, where
    reading them costs no wait for a GPU."""
    given = {name: tensor for name, tensor in tensors.items() if tensor is not None}
    sizes = {name: tensor.shape[0] for name, tensor in given.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("batch sizes differ: " + ", ".join(f"{name} has {size}" for name, size in sizes.items()))
    ids, mask = given.get("input_ids"), given.get("attention_mask")
    if ids is not None and mask is not None and mask.shape != ids.shape:
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but input_ids has {tuple(ids.shape)}; "
                         "they must match")
    for name in ("input_ids", "decoder_input_ids", "labels"):
        ids = given.get(name)
        if ids is None or ids.device.type != "cpu" or ids.dim() < 2 and name == "labels":
            continue
        real = ids[ids != -100] if name == "labels" else ids
        outside = real[(real < 0) | (real >= config.vocab_size)]
        if outside.numel():
            raise ValueError(f"{name} holds the id {int(outside[0])}, outside [0, vocab_size={config.vocab_size}); "
                             "was it made by another model's tokenizer?")


# ---------------------------------------------------------------------------------------------------
# Section 3.5: Positional Encoding
# ---------------------------------------------------------------------------------------------------


def sinusoidal_table(num_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).

    Sines and cosines are interleaved on even and odd dimensions exactly as in the paper (Marian and
    fairseq put all sines first, then all cosines).
    """
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    inverse_frequency = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * inverse_frequency)
    table[:, 1::2] = torch.cos(position * inverse_frequency[: d_model // 2])
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Section 3.5: fixed sinusoids, no parameters; a lookup by position."""

    def __init__(self, num_positions: int, d_model: int):
        super().__init__()
        # Not saved in checkpoints: it is a function of the config. `_init_weights` recomputes it after
        # `from_pretrained`, which fills non-persistent buffers with uninitialised memory.
        self.register_buffer("table", sinusoidal_table(num_positions, d_model), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table[position_ids]


def build_positional_encoding(config: VanillaTransformerConfig) -> nn.Module:
    if config.positional_encoding == "learned":  # Table 3, row (E): "learned positional embedding"
        return nn.Embedding(config.max_position_embeddings, config.d_model)
    return SinusoidalPositionalEncoding(config.max_position_embeddings, config.d_model)


# ---------------------------------------------------------------------------------------------------
# Section 3.2.1: Scaled Dot-Product Attention
# ---------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # (B, H, T, Dh)
    key: torch.Tensor,  # (B, H, S, Dh)
    value: torch.Tensor,  # (B, H, S, Dh)
    attention_mask: torch.Tensor | None,  # (B, 1, T, S): bool (True = may attend) or additive float
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, written out so the weights can be returned."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (B, H, T, S)
    if attention_mask is None and module.is_causal and query.shape[2] > 1:
        # The mask builders leave a purely causal mask implicit for the fused kernel (its `is_causal`).
        # The T queries are the last T of the S positions: query i sees keys up to S - T + i.
        attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril(
            key.shape[2] - query.shape[2])
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        attention_mask = attention_mask == 0  # transformers' additive masks hold 0 (attend) or a large negative
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if attention_mask is not None:
        # a query whose keys are all masked (padding under local attention) attends to nothing
        weights = weights.masked_fill(~attention_mask.any(dim=-1, keepdim=True), 0.0)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value)  # (B, H, T, Dh)
    return output.transpose(1, 2).contiguous(), weights  # (B, T, H, Dh), (B, H, T, S)


# ---------------------------------------------------------------------------------------------------
# Section 3.2.2: Multi-Head Attention
# ---------------------------------------------------------------------------------------------------


class VanillaTransformerAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    Used three ways (Section 3.2.3): encoder self-attention, masked decoder self-attention
    (`is_causal=True`), and encoder-decoder attention (`is_cross_attention=True`: queries from the decoder,
    keys and values from the encoder output).
    """

    def __init__(self, config: VanillaTransformerConfig, is_causal: bool, is_cross_attention: bool, layer_idx: int):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.d_model // config.num_attention_heads
        self.scaling = self.head_dim**-0.5  # 1 / sqrt(d_k)
        self.dropout = config.attention_dropout
        # transformers' SDPA path treats a module without `is_causal` as causal: always set it.
        self.is_causal = is_causal
        self.is_cross_attention = is_cross_attention
        self.layer_idx = layer_idx
        # W^Q, W^K, W^V (all heads side by side) and W^O are parameter matrices in the paper: no biases.
        # (A key bias would be useless anyway: the softmax over keys cancels it.)
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def split_heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, T, d_model): the queries
        attention_mask: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,  # (B, S, d_model): the encoder output, for cross-attention
        past_key_values: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self.split_heads(self.q_proj(hidden_states))
        key, value = self.project_keys_and_values(hidden_states, key_value_states, past_key_values)

        implementation = self.config._attn_implementation
        if output_attentions and implementation != "eager":
            # Only the written-out attention has the weights to return; the fused kernels never form them.
            logger.warning_once(f"attn_implementation={implementation!r} cannot return attention weights: "
                                "using the eager (written-out) attention where they are asked for. Load the "
                                "model with attn_implementation='eager' to choose it from the start.")
            implementation = "eager"
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
        )
        output = output.reshape(*hidden_states.shape[:-1], -1)  # Concat(head_1, ..., head_h): (B, T, d_model)
        return self.out_proj(output), weights

    def project_keys_and_values(self, hidden_states, key_value_states, past_key_values):
        """K and V for this step, through the KV cache when generating.

        Self-attention appends the new positions to the cache; cross-attention projects the encoder
        output once, on the first step, and reuses it afterwards.
        """
        if past_key_values is None:
            source = key_value_states if self.is_cross_attention else hidden_states
            return self.split_heads(self.k_proj(source)), self.split_heads(self.v_proj(source))

        if not self.is_cross_attention:
            cache = past_key_values.self_attention_cache
            key = self.split_heads(self.k_proj(hidden_states))
            value = self.split_heads(self.v_proj(hidden_states))
            return cache.update(key, value, self.layer_idx)

        cache = past_key_values.cross_attention_cache
        if past_key_values.is_updated.get(self.layer_idx):
            return cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
        key = self.split_heads(self.k_proj(key_value_states))
        value = self.split_heads(self.v_proj(key_value_states))
        key, value = cache.update(key, value, self.layer_idx)
        past_key_values.is_updated[self.layer_idx] = True
        return key, value


# ---------------------------------------------------------------------------------------------------
# Section 3.3: Position-wise Feed-Forward Networks;  Sections 3.1 + 5.4: residual, dropout, LayerNorm
# ---------------------------------------------------------------------------------------------------


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied to each position separately and identically."""

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.ffn_dim)
        self.activation = ACT2FN[config.activation_function]
        self.fc2 = nn.Linear(config.ffn_dim, config.d_model)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden_states)))


class SublayerConnection(nn.Module):
    """The output of each sub-layer is LayerNorm(x + Dropout(Sublayer(x))) (Sections 3.1 and 5.4).

    With `normalize_before=True` (pre-LN, not the paper's) it is x + Dropout(Sublayer(LayerNorm(x))).
    """

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__()
        self.normalize_before = config.normalize_before
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def sublayer_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x) if self.normalize_before else x

    def add_residual(self, x: torch.Tensor, sublayer_output: torch.Tensor) -> torch.Tensor:
        y = x + self.dropout(sublayer_output)
        return y if self.normalize_before else self.layer_norm(y)


# ---------------------------------------------------------------------------------------------------
# Section 3.1: Encoder and Decoder Stacks
# ---------------------------------------------------------------------------------------------------


class VanillaTransformerEncoderLayer(GradientCheckpointingLayer):
    """One encoder layer: multi-head self-attention, then the feed-forward network."""

    def __init__(self, config: VanillaTransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = VanillaTransformerAttention(config, is_causal=False, is_cross_attention=False, layer_idx=layer_idx)
        self.self_attn_sublayer = SublayerConnection(config)
        self.feed_forward = PositionwiseFeedForward(config)
        self.feed_forward_sublayer = SublayerConnection(config)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        attended, self_attn_weights = self.self_attn(
            self.self_attn_sublayer.sublayer_input(hidden_states), attention_mask, output_attentions=output_attentions
        )
        hidden_states = self.self_attn_sublayer.add_residual(hidden_states, attended)
        transformed = self.feed_forward(self.feed_forward_sublayer.sublayer_input(hidden_states))
        hidden_states = self.feed_forward_sublayer.add_residual(hidden_states, transformed)
        return hidden_states, self_attn_weights


class VanillaTransformerDecoderLayer(GradientCheckpointingLayer):
    """One decoder layer: masked self-attention, encoder-decoder attention, then the feed-forward network."""

    def __init__(self, config: VanillaTransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = VanillaTransformerAttention(config, is_causal=True, is_cross_attention=False, layer_idx=layer_idx)
        self.self_attn_sublayer = SublayerConnection(config)
        self.encoder_attn = VanillaTransformerAttention(config, is_causal=False, is_cross_attention=True, layer_idx=layer_idx)
        self.encoder_attn_sublayer = SublayerConnection(config)
        self.feed_forward = PositionwiseFeedForward(config)
        self.feed_forward_sublayer = SublayerConnection(config)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        output_attentions=False,
    ):
        attended, self_attn_weights = self.self_attn(
            self.self_attn_sublayer.sublayer_input(hidden_states),
            attention_mask,
            past_key_values=past_key_values,
            output_attentions=output_attentions,
        )
        hidden_states = self.self_attn_sublayer.add_residual(hidden_states, attended)
        attended, cross_attn_weights = self.encoder_attn(
            self.encoder_attn_sublayer.sublayer_input(hidden_states),
            encoder_attention_mask,
            key_value_states=encoder_hidden_states,
            past_key_values=past_key_values,
            output_attentions=output_attentions,
        )
        hidden_states = self.encoder_attn_sublayer.add_residual(hidden_states, attended)
        transformed = self.feed_forward(self.feed_forward_sublayer.sublayer_input(hidden_states))
        hidden_states = self.feed_forward_sublayer.add_residual(hidden_states, transformed)
        return hidden_states, self_attn_weights, cross_attn_weights


# ---------------------------------------------------------------------------------------------------
# The stacks
# ---------------------------------------------------------------------------------------------------


class TransformerStack(nn.Module):
    """What the encoder and decoder stacks share: token embeddings scaled by sqrt(d_model) (Section 3.4)
    plus positional encodings (3.5), dropout on their sum (5.4), and N identical layers (3.1)."""

    stack_name = "stack"  # "encoder" or "decoder" in the subclasses, for error messages

    def __init__(self, config: VanillaTransformerConfig, layer_class: type[nn.Module], num_layers: int):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_positions = build_positional_encoding(config)
        self.layernorm_embedding = nn.LayerNorm(config.d_model) if config.layernorm_embedding else None
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(layer_class(config, i) for i in range(num_layers))
        # pre-LN leaves the last residual stream un-normalised: normalise it once at the end
        self.layer_norm = nn.LayerNorm(config.d_model) if config.normalize_before else None

    def embed(self, input_ids, inputs_embeds, past_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(token embeddings, dropout(scaled token embeddings + positional encodings)), each (B, L, d_model);
        with config.layernorm_embedding, the sum is layer-normalised before the dropout; in training, with
        config.word_dropout, some tokens' embeddings are zeroed first."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"Pass the {self.stack_name} exactly one of token ids and input embeddings.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        length = inputs_embeds.shape[1]
        check_sequence_length(past_length + length, self.config, f"The {self.stack_name} input")
        positions = torch.arange(past_length, past_length + length, device=inputs_embeds.device)
        encoded_positions = self.embed_positions(positions).to(inputs_embeds.dtype)
        scaled = inputs_embeds * self.embed_scale
        if self.training and self.config.word_dropout > 0:  # whole words, not units: no rescaling
            kept = torch.rand(scaled.shape[:-1], device=scaled.device) >= self.config.word_dropout
            scaled = scaled * kept.unsqueeze(-1).to(scaled.dtype)
        embedded = scaled + encoded_positions
        if self.layernorm_embedding is not None:
            embedded = self.layernorm_embedding(embedded)
        return inputs_embeds, self.dropout(embedded)

    def final_layer_norm(self, hidden_states, all_hidden_states):
        if self.layer_norm is None:
            return hidden_states, all_hidden_states
        hidden_states = self.layer_norm(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states = all_hidden_states[:-1] + (hidden_states,)
        return hidden_states, all_hidden_states


@dataclass
class VanillaTransformerEncoderOutput(BaseModelOutput):
    """The encoder's output, with the source token ids it read: `generate()` runs the encoder once and then
    passes only this output on, and the copy mechanism needs the ids to know which token each position is.

    source_ids: (B, S) the encoder's `input_ids` when config.copy_mechanism is on (else, or when it was given
        `inputs_embeds`, None).
    """

    source_ids: torch.LongTensor | None = None


class VanillaTransformerEncoder(TransformerStack):
    """The encoder: N layers of self-attention and feed-forward over the source (Section 3.1)."""

    stack_name = "encoder"

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__(config, VanillaTransformerEncoderLayer, config.encoder_layers)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool | None = None,  # always a ModelOutput here; the accepted flag is for `generate`
    ) -> BaseModelOutput:
        inputs_embeds, hidden_states = self.embed(input_ids, inputs_embeds, past_length=0)

        window = self.config.attention_window
        mask = local_window_mask(self.config, attention_mask, causal=False, output_attentions=output_attentions,
                                 cached=False)
        if mask is None:
            mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                and_mask_function=None if window is None else local_window(window, causal=False),
                allow_is_bidirectional_skip=not output_attentions,
            )

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, mask, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states, all_hidden_states = self.final_layer_norm(hidden_states, all_hidden_states)
        return VanillaTransformerEncoderOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions,
            source_ids=input_ids if self.config.copy_mechanism else None,
        )


class VanillaTransformerDecoder(TransformerStack):
    """The decoder: N layers; position i sees target positions <= i and the whole encoder output."""

    stack_name = "decoder"

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__(config, VanillaTransformerDecoderLayer, config.decoder_layers)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if use_cache and past_key_values is None:
            past_key_values = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            past_key_values = None

        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        inputs_embeds, hidden_states = self.embed(input_ids, inputs_embeds, past_length)

        window = self.config.attention_window
        self_attn_mask = local_window_mask(self.config, attention_mask, causal=True,
                                           output_attentions=output_attentions, cached=past_key_values is not None)
        if self_attn_mask is None:
            self_attn_mask = create_causal_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                past_key_values=past_key_values.self_attention_cache if past_key_values is not None else None,
                and_mask_function=None if window is None else local_window(window, causal=True),
                allow_is_causal_skip=not output_attentions,
            )
        cross_attn_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            allow_is_bidirectional_skip=not output_attentions,
        )

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_self_attentions = () if output_attentions else None
        all_cross_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                self_attn_mask,
                encoder_hidden_states,  # positional, for gradient checkpointing
                encoder_attention_mask=cross_attn_mask,
                past_key_values=past_key_values,
                output_attentions=output_attentions,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_self_attentions += (self_weights,)
                all_cross_attentions += (cross_weights,)
        hidden_states, all_hidden_states = self.final_layer_norm(hidden_states, all_hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=past_key_values,
            hidden_states=all_hidden_states,
            attentions=all_self_attentions,
            cross_attentions=all_cross_attentions,
        )


# ---------------------------------------------------------------------------------------------------
# Not in the paper: a copy mechanism (config.copy_mechanism), for targets made of words chosen from the source
# ---------------------------------------------------------------------------------------------------


class CopyMechanism(nn.Module):
    """The pointer-generator of See et al. (2017), "Get To The Point", on the Transformer's output:

        P(w) = p_gen * softmax(logits)(w) + (1 - p_gen) * sum of a_i over the source positions i holding token w

    where a = softmax(q K^T / sqrt(d_model)) is one attention head from the decoder state (query) over the
    encoder output (keys), and p_gen = sigmoid(w_g [decoder state; attention context]) chooses, per target
    position, between writing from the vocabulary and copying. Source and target share one vocabulary
    (Section 5.1), so a copied position adds its probability to its own token.

    Returns log P, computed in float32. It stands in for the logits: log_softmax(log P) = log P, so the loss
    and `generate()` take it unchanged.
    """

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__()
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key = nn.Linear(config.d_model, config.d_model)
        self.gate = nn.Linear(2 * config.d_model, 1)

    def forward(self, logits, decoder_states, encoder_states, source_ids, source_mask=None):
        # logits (B, T, V); decoder_states (B, T, D); encoder_states (B, S, D); source_ids, source_mask (B, S)
        scores = self.query(decoder_states) @ self.key(encoder_states).transpose(1, 2)  # (B, T, S)
        scores = scores.float() / math.sqrt(decoder_states.shape[-1])
        if source_mask is not None:
            scores = scores.masked_fill(~source_mask.bool()[:, None, :], float("-inf"))
        pointer = scores.softmax(dim=-1)  # (B, T, S)
        context = pointer.to(encoder_states.dtype) @ encoder_states  # (B, T, D)
        gate = self.gate(torch.cat([decoder_states, context.to(decoder_states.dtype)], dim=-1)).float()  # (B, T, 1)

        copy = torch.zeros_like(logits, dtype=torch.float32)  # (B, T, V)
        copy.scatter_add_(-1, source_ids[:, None, :].expand(-1, pointer.shape[1], -1), pointer)
        # log(p_gen P_vocab + (1 - p_gen) P_copy) as a log-sum-exp; tokens absent from the source have
        # P_copy = 0, clamped to the smallest float so that log and its gradient stay finite
        return torch.logaddexp(nn.functional.logsigmoid(gate) + logits.float().log_softmax(dim=-1),
                               nn.functional.logsigmoid(-gate) + copy.clamp_min(torch.finfo(copy.dtype).tiny).log())


# ---------------------------------------------------------------------------------------------------
# The model and its heads
# ---------------------------------------------------------------------------------------------------


class VanillaTransformerPreTrainedModel(PreTrainedModel):
    config_class = VanillaTransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False
    _no_split_modules = ["VanillaTransformerEncoderLayer", "VanillaTransformerDecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        """Xavier-uniform projections with zero biases; embeddings N(0, d_model^-0.5), so that after the
        sqrt(d_model) scaling of Section 3.4 they have unit variance. (The paper does not state an
        initialisation; this is fairseq's.)"""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.d_model**-0.5)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SinusoidalPositionalEncoding):
            init.copy_(module.table, sinusoidal_table(*module.table.shape))

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also writes the code files and the full `auto_map`, so the folder is a complete Hub repository."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            export_hub_code(save_directory, model=self)

    def push_to_hub(self, repo_id: str, *, tokenizer=None, commit_message: str | None = None,
                    private: bool | None = None, token: bool | str | None = None, revision: str | None = None,
                    create_pr: bool = False, **save_kwargs) -> str:
        """Upload the complete folder (weights, config, code, model card, and the tokenizer if given).

        transformers' own `push_to_hub` replaces the model card with a template and uploads only the code
        of classes registered for auto classes; this uploads exactly what `save_pretrained` writes.
        """
        return push_folder_to_hub(self, repo_id, tokenizer=tokenizer, commit_message=commit_message,
                                  private=private, token=token, revision=revision, create_pr=create_pr, **save_kwargs)


class VanillaTransformerModel(VanillaTransformerPreTrainedModel):
    """The bare encoder-decoder, returning the decoder's last hidden states."""

    # Section 3.4: one embedding matrix for source and target tokens (a shared vocabulary); tied only
    # when config.tie_word_embeddings is True.
    _tied_weights_keys = {"decoder.embed_tokens.weight": "encoder.embed_tokens.weight"}

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__(config)
        self.encoder = VanillaTransformerEncoder(config)
        self.decoder = VanillaTransformerDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def set_input_embeddings(self, embeddings):
        self.encoder.embed_tokens = embeddings
        if self.config.tie_word_embeddings:
            self.decoder.embed_tokens = embeddings

    def get_encoder(self):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if self.training and self.is_activation_checkpointing:  # (walks every module: not per generated token)
            use_cache = False  # the backward pass would replay cache updates

        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)

        decoder_outputs = self.decoder(
            decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            past_key_values=past_key_values,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            past_key_values=decoder_outputs.past_key_values,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return output if return_dict is not False else output.to_tuple()


class VanillaTransformerForConditionalGeneration(VanillaTransformerPreTrainedModel, GenerationMixin):
    """The full model of Figure 1: encoder-decoder, then a linear layer and a softmax over the vocabulary."""

    # Section 3.4: "we share the same weight matrix between the two embedding layers and the pre-softmax
    # linear transformation" (used only when config.tie_word_embeddings is True).
    _tied_weights_keys = {
        "lm_head.weight": "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight": "model.encoder.embed_tokens.weight",
    }
    def __init__(self, config: VanillaTransformerConfig):
        super().__init__(config)
        self.model = VanillaTransformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.copy_mechanism = CopyMechanism(config) if config.copy_mechanism else None
        self.post_init()

    def get_encoder(self):
        return self.model.encoder

    def get_decoder(self):
        return self.model.decoder

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, embeddings):
        self.lm_head = embeddings

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def _reorder_cache(self, past_key_values: Cache, beam_idx: torch.LongTensor) -> Cache:
        """Beam search keeps, for each input, the beams in `beam_idx`: reorder their decoder self-attention
        cache. The encoder-decoder attention cache stays as it is: beam search gives every beam of an input
        the same copy of its encoder output, and `beam_idx` only picks among the beams of the same input, so
        reordering it would copy identical keys and values (transformers' `EncoderDecoderCache.reorder_cache`
        does, 6 MB per step at batch 8, 4 beams, 3 layers, 32 source tokens).
        """
        if isinstance(past_key_values, EncoderDecoderCache):
            past_key_values.self_attention_cache.reorder_cache(beam_idx)
        else:
            past_key_values.reorder_cache(beam_idx)
        return past_key_values

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        labels: target token ids, `-100` where no loss is taken (padding). When given without
            `decoder_input_ids`, the decoder input is `labels` shifted right.
        num_items_in_batch: the number of target tokens over all gradient-accumulation steps and processes,
            passed by `Trainer`; the loss is then sum / num_items_in_batch, so that accumulated and
            distributed steps average over tokens exactly as one large batch would.
        """
        check_inputs(self.config, input_ids=input_ids, attention_mask=attention_mask,
                     decoder_input_ids=decoder_input_ids, labels=labels)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)

        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(outputs.last_hidden_state)  # (B, T, vocab); the softmax is in the loss / generate
        if self.copy_mechanism is not None:
            source_ids = input_ids if input_ids is not None else getattr(encoder_outputs, "source_ids", None)
            if source_ids is None:
                raise ValueError("config.copy_mechanism=True needs the source token ids: pass input_ids (or "
                                 "encoder_outputs from this model's encoder run on input_ids), not inputs_embeds")
            logits = self.copy_mechanism(logits, outputs.last_hidden_state, outputs.encoder_last_hidden_state,
                                         source_ids, attention_mask)

        loss = None
        if labels is not None:
            loss = label_smoothed_cross_entropy(logits, labels, self.config.label_smoothing, num_items_in_batch)

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict is not False else output.to_tuple()

def label_smoothed_cross_entropy(logits, labels, label_smoothing: float, num_items_in_batch=None) -> torch.Tensor:
    """Cross-entropy with label smoothing epsilon_ls (Section 5.4), in float32, summed over the labelled
    positions (label -100 is ignored) and divided by `num_items_in_batch` (default: their number)."""
    labels = labels.to(logits.device).reshape(-1)
    total = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels, ignore_index=-100,
                                        reduction="sum", label_smoothing=label_smoothing)
    if num_items_in_batch is None:
        num_items_in_batch = (labels != -100).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class VanillaTransformerForSequenceClassification(VanillaTransformerPreTrainedModel):
    """Encoder, pooling over positions, dropout, a linear classifier. No decoder: every parameter is used
    (distributed data parallel fails on parameters that get no gradient)."""

    def __init__(self, config: VanillaTransformerConfig):
        super().__init__(config)
        self.encoder = VanillaTransformerEncoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def set_input_embeddings(self, embeddings):
        self.encoder.embed_tokens = embeddings

    def is_single_label(self, labels: torch.Tensor) -> bool:
        """One class index per example, as transformers' sequence-classification loss decides it."""
        if self.config.problem_type is not None:
            return self.config.problem_type == "single_label_classification"
        return self.config.num_labels > 1 and labels.dtype in (torch.long, torch.int)

    def pool(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.config.classifier_pooling == "first":
            return hidden_states[:, 0]
        if self.config.classifier_pooling == "max":
            if attention_mask is not None:  # padding never wins the maximum
                padding = attention_mask.unsqueeze(-1) == 0
                hidden_states = hidden_states.masked_fill(padding, torch.finfo(hidden_states.dtype).min)
            return hidden_states.amax(dim=1)
        if attention_mask is None:
            return hidden_states.mean(dim=1)
        weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, S, 1): mean over real tokens only
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        r"""
        num_items_in_batch: the number of examples over all gradient-accumulation steps and processes; the
            loss is then sum / num_items_in_batch (see `VanillaTransformerForConditionalGeneration.forward`).
        """
        check_inputs(self.config, input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        encoder_outputs = self.encoder(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions if output_attentions is not None else self.config.output_attentions,
            output_hidden_states=bool(output_hidden_states),
        )
        pooled = self.pool(encoder_outputs.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None and self.config.label_smoothing > 0 and self.is_single_label(labels):
            loss = label_smoothed_cross_entropy(logits, labels, self.config.label_smoothing, num_items_in_batch)
        elif labels is not None:  # transformers' loss: cross-entropy, MSE (one label) or BCE (multi-label)
            loss = self.loss_function(
                labels=labels, pooled_logits=logits, config=self.config, num_items_in_batch=num_items_in_batch
            )
        output = SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
        )
        return output if return_dict is not False else output.to_tuple()


__all__ = [
    "label_smoothed_cross_entropy",
    "shift_tokens_right",
    "VanillaTransformerPreTrainedModel",
    "VanillaTransformerModel",
    "VanillaTransformerForConditionalGeneration",
    "VanillaTransformerForSequenceClassification",
]
