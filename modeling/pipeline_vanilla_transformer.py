"""A text-to-text pipeline for translation and summarisation.

transformers 5 removed its "translation" and "summarization" pipelines. This class brings them back for
our models: `pipeline("translation", model=folder, trust_remote_code=True)` finds it through the
`custom_pipelines` entry of the saved config.json; it can also be built directly,
`VanillaTransformerSeq2SeqPipeline(model=model, tokenizer=tokenizer, task="translation")`.
"""

from transformers import Pipeline


class VanillaTransformerSeq2SeqPipeline(Pipeline):
    """text in, generated text out: [{"translation_text": ...}] or [{"summary_text": ...}]."""

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, truncation=None, **generate_kwargs):
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        return preprocess_params, {"generate_kwargs": generate_kwargs}, {}

    def preprocess(self, text, truncation=True):
        return self.tokenizer(text, return_tensors="pt", truncation=truncation)

    def _forward(self, model_inputs, generate_kwargs=None):
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs or {})
        return {"output_ids": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs):
        key = "summary_text" if self.task == "summarization" else "translation_text"
        texts = self.tokenizer.batch_decode(model_outputs["output_ids"], skip_special_tokens=True)
        return [{key: text} for text in texts]
