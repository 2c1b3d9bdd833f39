"""Importing any one of our packages registers every class with the Auto classes."""

import subprocess
import sys

import pytest

CHECK = """
import {package}
from transformers import (AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification,
                          AutoTokenizer)
from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING

config = AutoConfig.for_model("vanilla_transformer", vocab_size=300, d_model=16, encoder_layers=1,
                              decoder_layers=1, num_attention_heads=2, ffn_dim=32)
names = [type(auto.from_config(config)).__name__
         for auto in (AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification)]
names.append(TOKENIZER_MAPPING[type(config)].__name__)
print(" ".join([type(config).__name__] + names))
"""


@pytest.mark.parametrize("package", ["vanilla_transformer.configuration", "vanilla_transformer.modeling",
                                     "vanilla_transformer.tokenization"])
def test_importing_one_package_registers_all_auto_classes(package):
    result = subprocess.run([sys.executable, "-c", CHECK.format(package=package)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "VanillaTransformerConfig", "VanillaTransformerModel", "VanillaTransformerForConditionalGeneration",
        "VanillaTransformerForSequenceClassification", "VanillaTransformerTokenizer",
    ]
