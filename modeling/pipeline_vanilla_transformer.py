"""A text-to-text pipeline for translation and summarisation.

transformers 5 removed its "translation" and "summarization" pipelines. This class brings them back for
our models: `pipeline("translation", model=folder, trust_remote_code=True)` finds it through the
`custom_pipelines` entry of the saved config.json; it can also be built directly,
`VanillaTransformerSeq2SeqPipeline(model=model, tokenizer=tokenizer, task="translation")`.
"""

from transformers import Pipeline


class VanillaTransformerSeq2SeqPipeline(Pipeline):
    """Text in, generated text out, as transformers 4's translation and summarization pipelines returned it:
    a text gives [{"translation_text": ...}] (or "summary_text"), a list of texts a flat list with one dict per
    text ([[...], ...] when several sequences per text are asked for). An empty (or blank) text gives an
    empty output text without running the model."""

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    @property
    def output_key(self) -> str:
        return "summary_text" if self.task == "summarization" else "translation_text"

    def __call__(self, inputs, **kwargs):
        empty = [{self.output_key: ""}]
        if isinstance(inputs, str):
            return super().__call__(inputs, **kwargs) if inputs.strip() else empty
        texts = list(inputs)
        written = [text for text in texts if text.strip()]
        generated = iter(super().__call__(written, **kwargs) if written else [])
        outputs = [next(generated) if text.strip() else empty for text in texts]
        return [output[0] for output in outputs] if all(len(output) == 1 for output in outputs) else outputs

    def _sanitize_parameters(self, truncation=None, **generate_kwargs):
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        return preprocess_params, {"generate_kwargs": generate_kwargs}, {}

    def preprocess(self, text, truncation=True):
        return self.tokenizer(text, return_tensors="pt", truncation=truncation)

    def _forward(self, model_inputs, generate_kwargs=None):
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs or {})
        return {"output_ids": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs):
        texts = self.tokenizer.batch_decode(model_outputs["output_ids"], skip_special_tokens=True)
        return [{self.output_key: text} for text in texts]
