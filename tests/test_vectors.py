"""Pretrained word vectors: GloVe and word2vec text files are read exactly, a malformed line is
named by file and line number, vectors land in the rows of their words, missing words are
counted and initialised as documented, and freezing stops training (tied output included)."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from transformer import DecoderOnlyTransformer, TransformerConfig
from transformer.data.vectors import VectorsReport, load_pretrained_embedding, read_word_vectors
from transformer.embeddings import TokenEmbedding

VECTORS = {
    "the": [0.25, -1.5, 3.0, 0.125],
    "cat": [1.0, 2.0, -0.5, 4.0],
    "sat": [-2.0, 0.0, 0.75, 1.25],
}
GLOVE = "".join(f"{w} {' '.join(str(v) for v in vec)}\n" for w, vec in VECTORS.items())
WORD2VEC = f"{len(VECTORS)} 4\n" + GLOVE


def _write(tmp_path: Path, text: str, name: str = "vectors.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _expected(words: list[str]) -> torch.Tensor:
    return torch.tensor([VECTORS[w] for w in words], dtype=torch.float32)


# ---- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [GLOVE, WORD2VEC], ids=["glove", "word2vec"])
def test_both_text_formats_read_to_the_same_words_and_matrix(tmp_path: Path, text: str) -> None:
    words, matrix = read_word_vectors(_write(tmp_path, text))
    assert words == list(VECTORS)
    assert matrix.dtype == torch.float32 and matrix.shape == (3, 4)
    assert torch.equal(matrix, _expected(words))


def test_gzip_files_are_decompressed(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(WORD2VEC)
    words, matrix = read_word_vectors(path)
    assert words == list(VECTORS) and torch.equal(matrix, _expected(words))


def test_fasttext_trailing_spaces_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    text = "2 4\n" + "the 0.25 -1.5 3 0.125 \n\n" + "cat 1 2 -0.5 4 \n"
    words, matrix = read_word_vectors(_write(tmp_path, text))
    assert words == ["the", "cat"] and torch.equal(matrix, _expected(words))


def test_keep_returns_only_those_words_in_file_order(tmp_path: Path) -> None:
    words, matrix = read_word_vectors(_write(tmp_path, GLOVE), keep={"sat", "the", "dog"})
    assert words == ["the", "sat"] and torch.equal(matrix, _expected(words))


def test_a_line_with_too_few_values_names_the_file_and_its_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, GLOVE + "\n" + "dog 1.0 2.0 3.0\n")  # line 5, after a blank line
    with pytest.raises(ValueError) as info:
        read_word_vectors(path)
    assert str(info.value) == (f"{path}, line 5: expected a word and 4 values, got 3 values "
                               f"(words cannot contain spaces)")


def test_a_bad_line_is_found_even_among_words_not_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, WORD2VEC.replace("cat 1.0", "cat 1.0 9.0"))
    with pytest.raises(ValueError, match=r"line 3: expected a word and 4 values, got 5"):
        read_word_vectors(path, keep={"the"})


def test_a_non_numeric_value_names_the_line_and_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path, WORD2VEC.replace("-0.5", "-0,5"))
    with pytest.raises(ValueError) as info:
        read_word_vectors(path)
    assert str(info.value) == f"{path}, line 3: value '-0,5' of word 'cat' is not a number"


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_values_are_rejected_with_their_line(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path, GLOVE.replace("0.75", bad))
    with pytest.raises(ValueError, match=r"line 3: word 'sat' has a value that is not finite"):
        read_word_vectors(path)


def test_a_word_given_twice_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, GLOVE + "cat 0 0 0 0\n")
    with pytest.raises(ValueError, match=r"line 4: word 'cat' already given on line 2"):
        read_word_vectors(path)


def test_a_header_count_that_disagrees_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "5 4\n" + GLOVE)
    with pytest.raises(ValueError, match=r"header announces 5 vectors, the file holds 3"):
        read_word_vectors(path)


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "\n\n")
    with pytest.raises(ValueError, match=r"holds no word vectors"):
        read_word_vectors(path)


def test_a_binary_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "vectors.bin"
    path.write_bytes(b"3 4\nthe \xff\xfe\x00\x01\n")
    with pytest.raises(ValueError, match=r"line 2: not UTF-8 .* not binary \.bin"):
        read_word_vectors(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.txt"))):
        read_word_vectors(tmp_path / "nope.txt")


# ---- loading into an embedding -------------------------------------------------------------


def test_vectors_land_in_the_rows_of_their_words(tmp_path: Path) -> None:
    embedding = nn.Embedding(5, 4)
    before = embedding.weight.detach().clone()
    report = load_pretrained_embedding(embedding, ["sat", "dog", "the", "cat", "mat"],
                                       _write(tmp_path, GLOVE), oov="zeros")
    weight = embedding.weight.detach()
    assert torch.equal(weight[[0, 2, 3]], _expected(["sat", "the", "cat"]))
    assert torch.equal(weight[[1, 4]], torch.zeros(2, 4))
    assert report == VectorsReport(found=3, missing=2, missing_words=["dog", "mat"], dim=4,
                                   path=str(tmp_path / "vectors.txt"))
    assert report.coverage == pytest.approx(0.6)
    assert not torch.equal(before, weight)


def test_a_dict_vocabulary_names_the_rows_and_leaves_other_rows_alone(tmp_path: Path) -> None:
    embedding = nn.Embedding(6, 4)
    before = embedding.weight.detach().clone()
    report = load_pretrained_embedding(embedding, {"cat": 5, "the": 1},
                                       _write(tmp_path, WORD2VEC))
    weight = embedding.weight.detach()
    assert torch.equal(weight[[5, 1]], _expected(["cat", "the"]))
    assert torch.equal(weight[[0, 2, 3, 4]], before[[0, 2, 3, 4]])
    assert (report.found, report.missing) == (2, 0)


def test_token_embedding_scales_the_loaded_vectors_by_sqrt_d_model(tmp_path: Path) -> None:
    embedding = TokenEmbedding(3, 4)
    load_pretrained_embedding(embedding, list(VECTORS), _write(tmp_path, GLOVE))
    assert torch.equal(embedding.weight.detach(), _expected(list(VECTORS)))  # before the scale
    out = embedding(torch.tensor([[2, 0]]))  # (1, 2, d_model)
    torch.testing.assert_close(out[0], _expected(["sat", "the"]) * math.sqrt(4))


def test_a_dimension_mismatch_names_the_file_d_model_and_the_dim_found(tmp_path: Path) -> None:
    path = _write(tmp_path, GLOVE)
    with pytest.raises(ValueError) as info:
        load_pretrained_embedding(nn.Embedding(3, 8), list(VECTORS), path)
    assert str(info.value) == (f"{path}: the vectors have dimension 4, but the embedding "
                               f"expects d_model=8")


def test_missing_rows_are_normal_with_the_std_of_the_loaded_vectors(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    known = torch.randn(50, 8, generator=g) * 5.0 + 1.0
    text = "".join(f"w{i} " + " ".join(f"{v:.6f}" for v in row.tolist()) + "\n"
                   for i, row in enumerate(known))
    vocab = [f"w{i}" for i in range(50)] + [f"oov{i}" for i in range(2000)]
    embedding = nn.Embedding(len(vocab), 8)
    report = load_pretrained_embedding(embedding, vocab, _write(tmp_path, text),
                                       generator=torch.Generator().manual_seed(1))
    assert (report.found, report.missing) == (50, 2000)
    assert len(report.missing_words) == 20 and report.missing_words[0] == "oov0"
    _, loaded = read_word_vectors(tmp_path / "vectors.txt")
    fill = embedding.weight.detach()[50:]  # 16000 draws
    assert float(fill.std()) == pytest.approx(float(loaded.std()), rel=0.03)
    assert abs(float(fill.mean())) < 0.15


def test_the_generator_makes_the_missing_rows_reproducible(tmp_path: Path) -> None:
    path = _write(tmp_path, GLOVE)
    weights = []
    for _ in range(2):
        embedding = nn.Embedding(4, 4)
        load_pretrained_embedding(embedding, [*VECTORS, "dog"], path,
                                  generator=torch.Generator().manual_seed(7))
        weights.append(embedding.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_the_padding_row_stays_zero_and_is_not_counted(tmp_path: Path) -> None:
    embedding = nn.Embedding(4, 4, padding_idx=0)
    report = load_pretrained_embedding(embedding, ["the", "cat", "sat", "dog"],
                                       _write(tmp_path, GLOVE))
    assert torch.equal(embedding.weight.detach()[0], torch.zeros(4))
    assert (report.found, report.missing) == (2, 1)


def test_freezing_stops_gradients_and_freezes_the_tied_output_matrix(tmp_path: Path) -> None:
    cfg = TransformerConfig.tiny(vocab_size=3, d_model=4, n_heads=2, tie_embeddings=True)
    model = DecoderOnlyTransformer(cfg)
    load_pretrained_embedding(model.embed, list(VECTORS), _write(tmp_path, GLOVE), freeze=True)
    assert not model.embed.weight.requires_grad
    assert model.generator.weight is model.embed.weight and not model.generator.weight.requires_grad
    model(torch.tensor([[1, 2, 1]])).sum().backward()
    assert model.embed.weight.grad is None
    assert model.layers[0].feed_forward.linear1.weight.grad is not None  # the rest still learns


def test_without_freeze_the_loaded_weight_still_trains(tmp_path: Path) -> None:
    embedding = nn.Embedding(3, 4)
    load_pretrained_embedding(embedding, list(VECTORS), _write(tmp_path, GLOVE))
    assert embedding.weight.requires_grad
    embedding(torch.tensor([0, 1])).sum().backward()
    assert embedding.weight.grad is not None


def test_no_word_in_the_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"none of the 2 vocabulary words has a vector"):
        load_pretrained_embedding(nn.Embedding(2, 4), ["The", "Cat"], _write(tmp_path, GLOVE))


def test_an_unknown_oov_rule_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"oov must be 'normal' or 'zeros', got 'uniform'"):
        load_pretrained_embedding(nn.Embedding(3, 4), list(VECTORS), _write(tmp_path, GLOVE),
                                  oov="uniform")


def test_a_vocab_id_outside_the_embedding_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"in \[0, 3\), got 3 for 'cat'"):
        load_pretrained_embedding(nn.Embedding(3, 4), {"cat": 3}, _write(tmp_path, GLOVE))


def test_a_module_with_two_embeddings_is_rejected(tmp_path: Path) -> None:
    model = DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=3, d_model=4, n_heads=2,
                                                          positional="learned"))
    with pytest.raises(ValueError, match=r"holds 2; pass the token embedding itself"):
        load_pretrained_embedding(model, list(VECTORS), _write(tmp_path, GLOVE))


def test_what_holds_no_embedding_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"nn.Embedding or a module holding one, got Tensor"):
        load_pretrained_embedding(torch.zeros(3, 4), list(VECTORS),  # type: ignore[arg-type]
                                  _write(tmp_path, GLOVE))
