"""Draw the attention weights of one input as heatmaps: one PNG per layer and kind (encoder self-attention,
decoder self-attention, encoder-decoder attention), one panel per head.

    python examples/attention_maps.py --model outputs/multi30k-en-de/model \\
        --text "A man rides a bicycle." --output-dir outputs/attention

For a seq2seq model the target is the model's own greedy translation unless --target is given.
"""

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def token_labels(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([i]).replace("\n", "\\n") or tokenizer.convert_ids_to_tokens(i) for i in ids]


def draw(weights: torch.Tensor, rows: list[str], columns: list[str], title: str, path: Path) -> None:
    """weights: (heads, queries, keys) for one example."""
    heads = weights.shape[0]
    cols = min(heads, 4)
    grid_rows = math.ceil(heads / cols)
    size = max(3.0, 0.28 * max(len(rows), len(columns)))
    figure, axes = plt.subplots(grid_rows, cols, figsize=(size * cols, size * grid_rows), squeeze=False)
    for head, axis in enumerate(axes.flat):
        if head >= heads:
            axis.axis("off")
            continue
        axis.imshow(weights[head].float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axis.set_title(f"head {head + 1}")
        axis.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
        axis.set_yticks(range(len(rows)), rows, fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model folder")
    parser.add_argument("--text", required=True, help="the source text")
    parser.add_argument("--target", help="the target text (seq2seq; default: the model's greedy output)")
    parser.add_argument("--output-dir", default="outputs/attention")
    args = parser.parse_args(argv)

    config = AutoConfig.from_pretrained(args.model, trust_remote_code=True)
    is_seq2seq = bool(getattr(config, "is_encoder_decoder", False)) and not config.architectures[0].endswith(
        "ForSequenceClassification")
    model_class = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForSequenceClassification
    model = model_class.from_pretrained(args.model, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    source = tokenizer(args.text, return_tensors="pt")
    source_tokens = token_labels(tokenizer, source["input_ids"][0].tolist())
    with torch.no_grad():
        if not is_seq2seq:
            outputs = model(**source, output_attentions=True)
            maps = [("encoder", outputs.attentions, source_tokens, source_tokens)]
        else:
            if args.target is not None:
                labels = tokenizer(text_target=args.target, return_tensors="pt")["input_ids"]
            else:
                generated = model.generate(**source, num_beams=1)
                labels = generated[:, 1:]  # drop the start token; ends with </s>
            outputs = model(**source, labels=labels, output_attentions=True)
            decoder_input = model.prepare_decoder_input_ids_from_labels(labels)[0].tolist()
            target_tokens = token_labels(tokenizer, decoder_input)
            print(f"target: {tokenizer.decode(labels[0], skip_special_tokens=True)}")
            maps = [
                ("encoder", outputs.encoder_attentions, source_tokens, source_tokens),
                ("decoder", outputs.decoder_attentions, target_tokens, target_tokens),
                ("cross", outputs.cross_attentions, target_tokens, source_tokens),
            ]
    for kind, layers, rows, columns in maps:
        for layer, weights in enumerate(layers):
            path = output_dir / f"{kind}_layer{layer + 1}.png"
            draw(weights[0], rows, columns, f"{kind} attention, layer {layer + 1} (rows attend to columns)", path)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
