"""Export a saved translation / summarization model folder to CTranslate2, an inference engine for
Transformers on CPUs and GPUs (https://opennmt.net/CTranslate2).

The model maps onto CTranslate2's own `TransformerSpec`: post-norm (`pre_norm=False`, or pre-norm with a final
layer norm per stack), ReLU or another supported activation, embeddings scaled by sqrt(d_model), one
vocabulary for source, target and output projection, and the position table given as it is (our sines and
cosines are interleaved; a learned table is passed the same way). The conversion itself is CTranslate2's:
a loader for our configuration is registered with `ctranslate2.converters.transformers.register_loader`,
and `TransformersConverter` (with `trust_remote_code=True`) loads the folder and writes the model.

`ctranslate2` is an optional dependency: `pip install vanilla-transformer[ctranslate2]`. Not part of the code
saved with a model (see `hub_vanilla_transformer.CODE_FILES`).

    export_ctranslate2("outputs/multi30k-en-de/model", "outputs/multi30k-en-de/ct2", quantization="int8")
    vanilla-transformer-ct2 outputs/multi30k-en-de/model outputs/multi30k-en-de/ct2 --quantization int8
"""

import argparse
import os
import sys
from pathlib import Path

QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "bfloat16", "float16", "float32")
CONFIG_CLASS = "VanillaTransformerConfig"


class NotConvertible(ValueError):
    """A model CTranslate2 cannot represent; the message names the config field."""


def check_convertible(config) -> None:
    if config.attention_window is not None:
        raise NotConvertible(
            f"config.attention_window={config.attention_window}: CTranslate2 has no local (windowed) attention; "
            "only models with global attention (attention_window=None) can be exported")
    if getattr(config, "copy_mechanism", False):
        raise NotConvertible("config.copy_mechanism=True: CTranslate2's Transformer has no copy (pointer) mechanism")
    architectures = getattr(config, "architectures", None) or []
    if any("SequenceClassification" in name for name in architectures):
        raise NotConvertible(f"config.architectures={architectures}: CTranslate2 exports sequence-to-sequence "
                             "models (VanillaTransformerForConditionalGeneration), not classifiers")
    from ctranslate2.converters.transformers import _SUPPORTED_ACTIVATIONS

    if config.activation_function not in _SUPPORTED_ACTIVATIONS:
        raise NotConvertible(f"config.activation_function={config.activation_function!r}: CTranslate2 supports "
                             f"{', '.join(sorted(_SUPPORTED_ACTIVATIONS))}")


def register_loader() -> None:
    """Registers our configuration with CTranslate2's converter for transformers models (once)."""
    from ctranslate2.converters import utils
    from ctranslate2.converters.transformers import _MODEL_LOADERS, _SUPPORTED_ACTIVATIONS, ModelLoader
    from ctranslate2.converters.transformers import register_loader as register
    from ctranslate2.specs import common_spec, transformer_spec

    if CONFIG_CLASS in _MODEL_LOADERS:
        return

    @register(CONFIG_CLASS)
    class VanillaTransformerLoader(ModelLoader):
        @property
        def architecture_name(self):
            return "AutoModelForSeq2SeqLM"  # with trust_remote_code, the folder's own class

        def get_model_spec(self, model):
            config = model.config
            check_convertible(config)
            spec = transformer_spec.TransformerSpec.from_config(
                (config.encoder_layers, config.decoder_layers), config.num_attention_heads,
                pre_norm=config.normalize_before, activation=_SUPPORTED_ACTIVATIONS[config.activation_function],
                layernorm_embedding=getattr(config, "layernorm_embedding", False))
            self.set_stack(spec.encoder, model.model.encoder)
            self.set_stack(spec.decoder, model.model.decoder)
            self.set_linear(spec.decoder.projection, model.lm_head)
            return spec

        def set_stack(self, spec, stack):
            spec.scale_embeddings = stack.embed_scale
            positions = stack.embed_positions
            # the sinusoid table (a buffer) or the learned one (an embedding's weight), row i for position i
            spec.position_encodings.encodings = positions.table if hasattr(positions, "table") else positions.weight
            self.set_embeddings(spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings,
                                stack.embed_tokens)
            if getattr(stack, "layernorm_embedding", None) is not None:
                self.set_layer_norm(spec.layernorm_embedding, stack.layernorm_embedding)
            if stack.layer_norm is not None:  # pre-LN: the final layer norm of the stack
                self.set_layer_norm(spec.layer_norm, stack.layer_norm)
            for layer_spec, layer in zip(spec.layer, stack.layers):
                self.set_attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
                self.set_layer_norm(layer_spec.self_attention.layer_norm, layer.self_attn_sublayer.layer_norm)
                if hasattr(layer, "encoder_attn"):
                    self.set_attention(layer_spec.attention, layer.encoder_attn, self_attention=False)
                    self.set_layer_norm(layer_spec.attention.layer_norm, layer.encoder_attn_sublayer.layer_norm)
                self.set_linear(layer_spec.ffn.linear_0, layer.feed_forward.fc1)
                self.set_linear(layer_spec.ffn.linear_1, layer.feed_forward.fc2)
                self.set_layer_norm(layer_spec.ffn.layer_norm, layer.feed_forward_sublayer.layer_norm)

        def set_attention(self, spec, attention, self_attention):
            q, k, v = (common_spec.LinearSpec() for _ in range(3))
            for linear_spec, module in zip((q, k, v), (attention.q_proj, attention.k_proj, attention.v_proj)):
                self.set_linear(linear_spec, module)
            if self_attention:  # CTranslate2 keeps Q, K and V as one product; for cross-attention Q and K|V
                utils.fuse_linear(spec.linear[0], [q, k, v])
            else:
                utils.fuse_linear(spec.linear[0], [q])
                utils.fuse_linear(spec.linear[1], [k, v])
            self.set_linear(spec.linear[-1], attention.out_proj)

        def get_vocabulary(self, model, tokenizer):
            tokens = super().get_vocabulary(model, tokenizer)[: model.config.vocab_size]
            # ids the tokenizer never produces still need a row name
            return tokens + [f"<unused_{i}>" for i in range(len(tokens), model.config.vocab_size)]

        def set_vocabulary(self, spec, tokens):
            spec.register_source_vocabulary(tokens)  # one vocabulary for source and target (Section 3.4)
            spec.register_target_vocabulary(tokens)

        def set_config(self, config, model, tokenizer):
            config.bos_token = tokenizer.bos_token
            config.eos_token = tokenizer.eos_token
            config.unk_token = tokenizer.unk_token
            config.decoder_start_token = tokenizer.convert_ids_to_tokens(model.config.decoder_start_token_id)


def export_ctranslate2(model_dir, output_dir, quantization: str | None = None, force: bool = False) -> str:
    """Converts a saved model folder (ours, sequence-to-sequence) into a CTranslate2 model folder; returns
    its path. `quantization`: None (the weights as saved), or one of QUANTIZATIONS."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as error:
        raise ImportError("export_ctranslate2 needs ctranslate2: pip install 'vanilla-transformer[ctranslate2]'") \
            from error
    from transformers import AutoConfig

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    if type(config).__name__ != CONFIG_CLASS:
        raise NotConvertible(f"{model_dir}: config.model_type={config.model_type!r} is not ours")
    check_convertible(config)
    register_loader()
    converter = TransformersConverter(str(model_dir), trust_remote_code=True)
    return converter.convert(str(output_dir), quantization=quantization, force=force)


def translator_threads(cpus: int | None = None) -> dict:
    """`ctranslate2.Translator` thread settings for a CPU: one translation per core (`inter_threads`), each on
    one thread (`intra_threads=1`). Several threads in one translation made each sentence slower on a 2-core
    machine, at the small and the base size alike (performance.md)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"inter_threads": max(1, cpus), "intra_threads": 1}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vanilla-transformer-ct2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a saved model folder (save_pretrained or train.py's model/)")
    parser.add_argument("output_dir", help="where the CTranslate2 model is written")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=None,
                        help="weight type (default: as saved, float32)")
    parser.add_argument("--force", action="store_true", help="overwrite output_dir if it exists")
    args = parser.parse_args(argv)
    try:
        path = export_ctranslate2(args.model_dir, args.output_dir, args.quantization, args.force)
    except (NotConvertible, ImportError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {Path(path)}")
    return 0
