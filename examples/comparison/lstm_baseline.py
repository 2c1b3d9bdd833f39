"""The architecture the Transformer replaced, as a baseline: LSTM encoder-decoder with attention, and an LSTM
classifier. transformers has no LSTM model, so these two are small modules of our own, written as
`PreTrainedModel`s so that the comparison treats them like every other model (save_pretrained,
from_pretrained, generate with greedy or beam search).

Encoder-decoder (Luong et al. 2015, "global attention" with the "general" score, without input feeding so
that the decoder LSTM runs over the whole target at once): a bidirectional LSTM encoder; an LSTM decoder;
each decoder state h_t attends over the encoder states s_j with score h_t^T W s_j; the attentional state
tanh(W_c [c_t; h_t]) is projected onto the embedding matrix shared by source, target and output (as in our
Transformer, Section 3.4 of the paper). generate() runs without a cache: every step re-reads the prefix.
"""

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, SequenceClassifierOutput


class LSTMConfig(PreTrainedConfig):
    model_type = "lstm_baseline"

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
    use_cache: bool = False  # no key/value cache: generation re-reads the prefix at every step


def run_lstm(lstm: nn.LSTM, embedded: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The LSTM over the real tokens of each row only (padding must not reach the backward direction)."""
    if attention_mask is None:
        return lstm(embedded)[0]
    lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    outputs, _ = lstm(packed)
    return nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=embedded.shape[1])[0]


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
        self.lstm = nn.LSTM(config.hidden_size, config.hidden_size // 2, config.num_layers, batch_first=True,
                            bidirectional=True, dropout=config.dropout if config.num_layers > 1 else 0.0)

    def forward(self, input_ids, attention_mask=None, **kwargs) -> BaseModelOutput:
        states = run_lstm(self.lstm, self.dropout(self.embed_tokens(input_ids)), attention_mask)
        return BaseModelOutput(last_hidden_state=states)


class LSTMForConditionalGeneration(LSTMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "encoder.embed_tokens.weight"}

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.encoder = LSTMEncoder(config)  # its embedding is shared by the decoder and the output layer
        self.decoder = nn.LSTM(config.hidden_size, config.hidden_size, config.num_layers, batch_first=True,
                               dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.score = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # the "general" score W
        self.combine = nn.Linear(2 * config.hidden_size, config.hidden_size)  # W_c
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_encoder(self):
        return self.encoder

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, encoder_outputs=None,
                labels=None, **kwargs) -> Seq2SeqLMOutput:
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask)
        memory = encoder_outputs[0]  # (B, S, H)
        decoder_states, _ = self.decoder(self.dropout(self.encoder.embed_tokens(decoder_input_ids)))  # (B, T, H)
        scores = decoder_states @ self.score(memory).transpose(1, 2)  # (B, T, S)
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask[:, None, :] == 0, torch.finfo(scores.dtype).min)
        context = scores.softmax(dim=-1) @ memory
        attentional = torch.tanh(self.combine(torch.cat([context, decoder_states], dim=-1)))
        logits = self.lm_head(self.dropout(attentional))
        return Seq2SeqLMOutput(logits=logits, encoder_last_hidden_state=memory)


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
