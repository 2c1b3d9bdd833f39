"""The tokenizer is lossless, shared by source and target, and saves and loads like any HF tokenizer."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from conftest import CORPUS
from vanilla_transformer.tokenization import VanillaTransformerTokenizer
from transformers import AutoTokenizer

SPECIAL_STRINGS = ("<pad>", "<s>", "</s>", "<unk>")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.lists(st.sampled_from(SPECIAL_STRINGS + (" ", "x", "é"))).map("".join))
def test_decode_of_encode_is_the_identity_on_any_unicode_text(tokenizer, text):
    """Any text, the special tokens' own spellings included, comes back unchanged."""
    ids = tokenizer(text)["input_ids"]
    assert ids.count(tokenizer.eos_token_id) == 1  # only the appended end of sequence is special
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids  # byte-level: nothing is unknown
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_special_tokens_have_the_ids_the_config_expects(tokenizer):
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]


def test_vocabulary_size_is_respected_and_subwords_are_learned(tokenizer):
    assert len(tokenizer) <= 320
    text = "Die Katze sass auf der Matte."
    assert len(tokenizer(text)["input_ids"]) < 0.6 * len(text.encode())  # merges, not one token per byte


def test_text_target_gives_labels_from_the_same_vocabulary(tokenizer):
    batch = tokenizer(["The cat sat on the mat."], text_target=["Die Katze sass auf der Matte."])
    assert batch["labels"][0] == tokenizer("Die Katze sass auf der Matte.")["input_ids"]
    assert batch["labels"][0][-1] == tokenizer.eos_token_id


def test_truncation_and_padding(tokenizer):
    batch = tokenizer(["a " * 200, "short"], truncation=True, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, 64)
    assert batch["input_ids"][1, -1] == tokenizer.pad_token_id and batch["attention_mask"][1, -1] == 0


def test_save_and_load_give_the_same_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    for loaded in (VanillaTransformerTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert isinstance(loaded, VanillaTransformerTokenizer)
        for text in CORPUS:
            assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert loaded.model_max_length == 64


def test_too_small_a_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab_size=100"):
        VanillaTransformerTokenizer.train_from_iterator(CORPUS, vocab_size=100)


DIALOGUE = ["Emma: I baked cookies.\r\nRob: Great!\r\nEmma: I will bring Rob some.", "Emma will bring Rob some cookies."]


@pytest.fixture(scope="module")
def prefix_space_tokenizer():
    return VanillaTransformerTokenizer.train_from_iterator(DIALOGUE * 20, vocab_size=300, add_prefix_space=True)


def test_prefix_space_makes_a_name_one_token_wherever_it_stands(prefix_space_tokenizer):
    """At the start of the text, at the start of a line and inside a sentence, "Rob" is the same token."""
    def name_tokens(tok, text):
        return {token for token in tok.convert_ids_to_tokens(tok(text)["input_ids"]) if "Rob" in token}

    assert len(name_tokens(prefix_space_tokenizer, "Rob: hi\r\nRob: hi\nEmma and Rob")) == 1
    plain = VanillaTransformerTokenizer.train_from_iterator(DIALOGUE * 20, vocab_size=300)
    assert len(name_tokens(plain, "Rob: hi\r\nRob: hi\nEmma and Rob")) == 2  # the problem the option solves


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.lists(st.sampled_from(SPECIAL_STRINGS + (" ", "\t", "\r\n", "\n", "x", "é"))).map("".join))
def test_prefix_space_decoding_gives_the_text_back_up_to_line_break_spacing(prefix_space_tokenizer, text):
    """Decoding removes the spaces that encoding added; only line breaks come back normalised to a bare "\\n"
    (no "\\r", no spaces or tabs around them) and one leading space is not kept."""
    expected = re.sub(r"[ \t]*\r?\n[ \t]*", "\n", text)
    expected = expected[1:] if expected.startswith(" ") else expected
    ids = prefix_space_tokenizer(text)["input_ids"]
    assert ids.count(prefix_space_tokenizer.eos_token_id) == 1
    assert prefix_space_tokenizer.decode(ids, skip_special_tokens=True) == expected


def test_prefix_space_survives_save_and_load(prefix_space_tokenizer, tmp_path):
    prefix_space_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.add_prefix_space
    for text in DIALOGUE:
        assert loaded(text)["input_ids"] == prefix_space_tokenizer(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text.replace("\r\n", "\n")
