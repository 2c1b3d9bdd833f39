"""The architecture the Transformer replaced, as a baseline: LSTM encoder-decoder with attention, and an LSTM
classifier. transformers has no LSTM model, so these two are small modules of our own, written as
`PreTrainedModel`s so that the comparison treats them like every other model (save_pretrained,
from_pretrained, generate with greedy or beam search).

Encoder-decoder: the model of Luong et al. (2015), "Effective Approaches to Attention-based Neural Machine
Translation": a bidirectional LSTM encoder; the decoder LSTM starts from the encoder's final states (through a
linear bridge, since the encoder's two directions have half the width each); each decoder state h_t attends
over the encoder states s_j with the "general" score h_t^T W s_j; the attentional state
h~_t = tanh(W_c [c_t; h_t]) is fed, with the next target embedding, into the decoder at step t + 1 ("input
feeding", so the decoder runs step by step), and projected onto the embedding matrix shared by source, target
and output (as in our Transformer, Section 3.4 of the paper); dropout on embeddings, between LSTM layers and
before the projection; every parameter initialised uniformly in [-0.1, 0.1] (their Section 4.1). generate()
carries the decoder's state from step to step (LSTMDecoderState), so each new token costs one decoder step.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, SequenceClassifierOutput


class LSTMConfig(PreTrainedConfig):
    model_type = "lstm_baseline"
    attribute_map = {"num_hidden_layers": "num_layers"}  # the name generate() reads when it sets up a cache

    vocab_size: int = 8000
    hidden_size: int = 256  # embeddings, decoder states, encoder states (two directions of hidden_size / 2)
    num_layers: int = 2
    dropout: float = 0.1
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True
    use_cache: bool = True  # generate() carries the decoder's state instead of re-reading the prefix


@dataclass
class LSTMEncoderOutput(BaseModelOutput):
    """The encoder states, and its final (h, c) per layer, batch first (B, 2, layers, hidden_size) so that
    generate() expands them for beam search like the states."""

    final_states: torch.FloatTensor | None = None


class LSTMDecoderState:
    """What the decoder needs to go on from where it stopped during generate(): the LSTM's (h, c) per layer
    (layers, B, H), the attentional state to feed next (B, 1, H) and the attention keys W s_j (B, H, S).
    generate() keeps it as the model's cache and reorders it when beam search moves beams."""

    def __init__(self, h: torch.Tensor, c: torch.Tensor, fed: torch.Tensor, keys: torch.Tensor, length: int):
        self.h, self.c, self.fed, self.keys, self.length = h, c, fed, keys, length

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.h, self.c = self.h.index_select(1, beam_idx), self.c.index_select(1, beam_idx)
        self.fed, self.keys = self.fed.index_select(0, beam_idx), self.keys.index_select(0, beam_idx)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first lengths[b] steps in reverse order, its padding where it was (B, L, ...): the input of a
    backward direction that must start at the row's last real token. Applied twice it is the identity."""
    steps = torch.arange(x.shape[1], device=x.device)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, L)
    return x.gather(1, index[..., None].expand_as(x))


def run_over_real_tokens(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor):
    """A one-layer, one-direction LSTM over each row's first lengths[b] steps: the outputs (B, L, width), zero on
    padding, and the state after each row's last real token ((1, B, width) each), as a packed sequence would
    give. The rows run sorted by length, in one call per stretch of time where the same rows are still real;
    packed sequences are avoided because their backward pass on the CPU is far slower."""
    order = lengths.argsort(descending=True)
    x, lengths = x[order], lengths[order]
    outputs, finals_h, finals_c, state, start = [], [], [], None, 0
    for end in sorted(set(lengths.tolist())):  # every row longer than `start` is real until `end` at least
        active = int((lengths > start).sum())
        if state is not None:
            state = (state[0][:, :active], state[1][:, :active])
        output, state = lstm(x[:active, start:end], state)
        outputs.append(nn.functional.pad(output, (0, 0, 0, 0, 0, x.shape[0] - active)))
        ending = lengths[:active] == end  # these rows end here (they are the last of the active rows)
        finals_h.append(state[0][:, ending])
        finals_c.append(state[1][:, ending])
        start = end
    outputs = torch.cat(outputs, dim=1)
    outputs = nn.functional.pad(outputs, (0, 0, 0, x.shape[1] - outputs.shape[1]))
    unsort = order.argsort()  # the shortest rows ended first and sit last in the sorted order
    final = (torch.cat(finals_h[::-1], dim=1)[:, unsort], torch.cat(finals_c[::-1], dim=1)[:, unsort])
    return outputs[unsort], final


class BidirectionalLSTM(nn.Module):
    """Stacked bidirectional LSTM that reads only the real tokens of each row (padding must not reach the
    backward direction): returns like nn.LSTM, outputs (B, L, 2 x width) and final (h, c), each
    (layers x 2, B, width), with dropout between layers."""

    def __init__(self, input_size: int, width: int, num_layers: int, dropout: float):
        super().__init__()
        self.num_layers = num_layers
        self.dropout = nn.Dropout(dropout if num_layers > 1 else 0.0)
        self.directions = nn.ModuleList(
            nn.ModuleList(nn.LSTM(input_size if layer == 0 else 2 * width, width, batch_first=True) for _ in range(2))
            for layer in range(num_layers))

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None):
        batch, length = x.shape[:2]
        lengths = (torch.full((batch,), length, device=x.device) if attention_mask is None
                   else attention_mask.sum(dim=1).clamp(min=1))
        finals_h, finals_c = [], []
        for layer, (left_to_right, right_to_left) in enumerate(self.directions):
            if layer > 0:
                x = self.dropout(x)
            ahead, (h, c) = run_over_real_tokens(left_to_right, x, lengths)
            behind, (h_back, c_back) = run_over_real_tokens(right_to_left, reverse_within_lengths(x, lengths), lengths)
            x = torch.cat([ahead, reverse_within_lengths(behind, lengths)], dim=-1)
            finals_h += [h, h_back]
            finals_c += [c, c_back]
        return x, (torch.cat(finals_h), torch.cat(finals_c))


class LSTMPreTrainedModel(PreTrainedModel):
    config_class = LSTMConfig
    base_model_prefix = "lstm"
    _supports_cache_class = False


class LSTMEncoder(nn.Module):
    main_input_name = "input_ids"  # generate() asks the encoder which input it reads

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = BidirectionalLSTM(config.hidden_size, config.hidden_size // 2, config.num_layers, config.dropout)

    def forward(self, input_ids, attention_mask=None, **kwargs) -> LSTMEncoderOutput:
        states, (h, c) = self.lstm(self.dropout(self.embed_tokens(input_ids)), attention_mask)
        layers, batch = self.lstm.num_layers, input_ids.shape[0]

        def both_directions(final):  # (layers x 2, B, width) -> (B, layers, 2 x width)
            return final.view(layers, 2, batch, -1).permute(2, 0, 1, 3).reshape(batch, layers, -1)

        return LSTMEncoderOutput(last_hidden_state=states,
                                 final_states=torch.stack([both_directions(h), both_directions(c)], dim=1))


class LSTMForConditionalGeneration(LSTMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "encoder.embed_tokens.weight"}

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.encoder = LSTMEncoder(config)  # its embedding is shared by the decoder and the output layer
        # input feeding: the decoder reads the target embedding and the previous attentional state
        self.decoder = nn.LSTM(2 * config.hidden_size, config.hidden_size, config.num_layers, batch_first=True,
                               dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.bridge_h = nn.Linear(config.hidden_size, config.hidden_size)  # encoder final states -> decoder's
        self.bridge_c = nn.Linear(config.hidden_size, config.hidden_size)
        self.score = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # the "general" score W
        self.combine = nn.Linear(2 * config.hidden_size, config.hidden_size)  # W_c
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        # Luong et al.'s uniform [-0.1, 0.1] instead of transformers' default (normal 0.02 for embeddings and
        # linear layers, zero LSTM biases), under which this model's training loss stalled near the unigram
        # level on Multi30k and SAMSum (the note of the commit that made this change has the numbers).
        if isinstance(module, (nn.Linear, nn.Embedding, nn.LSTM)):
            for parameter in module.parameters(recurse=False):
                init.uniform_(parameter, -0.1, 0.1)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            init.zeros_(module.weight[module.padding_idx])

    def get_encoder(self):
        return self.encoder

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, encoder_outputs=None,
                labels=None, past_key_values=None, use_cache=None, **kwargs) -> Seq2SeqLMOutput:
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask)
        memory, final = encoder_outputs.last_hidden_state, encoder_outputs.final_states  # (B, S, H), (B, 2, L, H)
        embedded = self.dropout(self.encoder.embed_tokens(decoder_input_ids))  # (B, T, H)
        if isinstance(past_key_values, LSTMDecoderState):  # generate() goes on: decoder_input_ids are the new tokens
            state, fed, keys = (past_key_values.h, past_key_values.c), past_key_values.fed, past_key_values.keys
        else:  # (a cache object that generate() made for attention models is ignored)
            state = (torch.tanh(self.bridge_h(final[:, 0])).transpose(0, 1).contiguous(),  # (L, B, H)
                     self.bridge_c(final[:, 1]).transpose(0, 1).contiguous())
            fed = embedded.new_zeros(embedded.shape[0], 1, embedded.shape[2])  # the attentional state of step t - 1
            keys = self.score(memory).transpose(1, 2)  # (B, H, S): W s_j for the "general" score
        padding = None if attention_mask is None else attention_mask[:, None, :] == 0
        attentional_states = []
        for t in range(embedded.shape[1]):
            output, state = self.decoder(torch.cat([embedded[:, t : t + 1], fed], dim=-1), state)  # (B, 1, H)
            scores = output @ keys  # (B, 1, S)
            if padding is not None:
                scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
            context = scores.softmax(dim=-1) @ memory
            attentional = torch.tanh(self.combine(torch.cat([context, output], dim=-1)))
            attentional_states.append(attentional)
            fed = self.dropout(attentional)
        logits = self.lm_head(self.dropout(torch.cat(attentional_states, dim=1)))
        cache = None
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache:
            seen = past_key_values.length if isinstance(past_key_values, LSTMDecoderState) else 0
            cache = LSTMDecoderState(*state, fed, keys, seen + embedded.shape[1])
        return Seq2SeqLMOutput(logits=logits, past_key_values=cache, encoder_last_hidden_state=memory)


class LSTMForSequenceClassification(LSTMPreTrainedModel):
    """A bidirectional LSTM, mean over the real tokens, dropout, a linear classifier."""

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.encoder = LSTMEncoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> SequenceClassifierOutput:
        states = self.encoder(input_ids, attention_mask).last_hidden_state
        if attention_mask is None:
            pooled = states.mean(dim=1)
        else:
            weights = attention_mask.to(states.dtype).unsqueeze(-1)
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))
