from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from ..configuration.configuration_vanilla_transformer import VanillaTransformerConfig
from ..tokenization.tokenization_vanilla_transformer import VanillaTransformerTokenizer
from .modeling_vanilla_transformer import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
    VanillaTransformerModel,
    VanillaTransformerPreTrainedModel,
)
from .attention_vanilla_transformer import BLOCKED_LOCAL
from .cpu_kernels_vanilla_transformer import enable_cpu_kernels
from .export_ctranslate2_vanilla_transformer import export_ctranslate2, translator_threads
from .pipeline_vanilla_transformer import VanillaTransformerSeq2SeqPipeline

AutoConfig.register(VanillaTransformerConfig.model_type, VanillaTransformerConfig, exist_ok=True)
AutoModel.register(VanillaTransformerConfig, VanillaTransformerModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(VanillaTransformerConfig, VanillaTransformerForConditionalGeneration, exist_ok=True)
AutoModelForSequenceClassification.register(
    VanillaTransformerConfig, VanillaTransformerForSequenceClassification, exist_ok=True
)
AutoTokenizer.register(VanillaTransformerConfig, fast_tokenizer_class=VanillaTransformerTokenizer, exist_ok=True)

__all__ = [
    "VanillaTransformerPreTrainedModel",
    "VanillaTransformerModel",
    "VanillaTransformerForConditionalGeneration",
    "VanillaTransformerForSequenceClassification",
    "VanillaTransformerSeq2SeqPipeline",
    "BLOCKED_LOCAL",
    "enable_cpu_kernels",
    "export_ctranslate2",
    "translator_threads",
]
