"""Translation tasks: the numbers task (digits → words) and Multi30k de→en, scored by sacreBLEU;
bad parallel data counted or refused; ``transformer translate`` on a run trained here."""

from __future__ import annotations

import gzip

import pytest
import sacrebleu
import torch

from transformer.cli import main
from transformer.data.datasets import read_parallel
from transformer.data.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer
from transformer.tasks import TASKS
from transformer.tasks.numbers import NumbersRecipe, number_pairs, number_to_words
from transformer.tasks.translation import (
    TranslationRecipe,
    cross_attention,
    encode_pairs,
    sacrebleu_scores,
    token_batches,
    translate,
)
from transformer.training import load_run
from transformer.viz import attention_maps

NUMBERS_RUN = ["--max-steps", "300", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory):
    """A numbers run trained once through the command line (seconds of CPU)."""
    out = tmp_path_factory.mktemp("runs") / "numbers"
    assert main(["train", "numbers", "--out", str(out), *NUMBERS_RUN]) == 0
    return out


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(("n", "words"), [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (407, "four hundred seven"),
    (999, "nine hundred ninety nine"), (1012, "one thousand twelve"), (20000, "twenty thousand"),
])
def test_numbers_are_written_in_english_words(n, words):
    assert number_to_words(n) == words


def test_numbers_splits_are_disjoint_and_cover_every_number():
    recipe = NumbersRecipe()
    splits = {split: {src for src, _ in number_pairs(recipe, split)}
              for split in ("train", "valid", "test")}
    assert len(splits["valid"]) == len(splits["test"]) == recipe.eval_size
    assert not (splits["train"] & splits["test"]) and not (splits["valid"] & splits["test"])
    assert len(set().union(*splits.values())) == recipe.max_number + 1
    assert ("4 0 7", "four hundred seven") in {p for s in ("train", "valid", "test")
                                               for p in number_pairs(recipe, s)}


def test_a_short_numbers_run_reaches_a_high_sacrebleu_on_unseen_numbers(numbers_run):
    run = load_run(numbers_run)
    assert run.extra["results"]["bleu"] >= 90  # the command's test score, as saved
    recipe = NumbersRecipe(**run.extra["recipe"])
    test = TASKS["numbers"].data(recipe, "test")
    hypotheses = translate(run.model, load_tokenizer(numbers_run), test.sources)
    assert sacrebleu.corpus_bleu(hypotheses, [test.references]).score >= 90


def test_the_numbers_model_ties_its_embeddings_over_one_vocabulary(numbers_run):
    model = load_run(numbers_run).model
    assert model.config.tie_embeddings and model.config.tgt_vocab_size is None
    assert model.src_embed.weight is model.tgt_embed.weight is model.generator.weight
    assert load_tokenizer(numbers_run).vocab_size == model.config.vocab_size


# ----------------------------------------------------------------------------- translate (CLI)


def test_translate_prints_the_words_of_a_number_greedy_and_with_beam_search(numbers_run,
                                                                          capsys):
    for beam in ("1", "4"):
        assert main(["translate", "--checkpoint", str(numbers_run), "--beam-size", beam,
                     "4 0 7", "9 1 5"]) == 0
        assert capsys.readouterr().out.splitlines() == ["four hundred seven",
                                                        "nine hundred fifteen"]


@pytest.mark.parametrize(("argv", "reason"), [
    (["--checkpoint", "{missing}", "4 0 7"], "cannot load"),
    (["--checkpoint", "{run}", "   "], "argument TEXT: expected a sentence"),
    (["--checkpoint", "{run}", "--beam-size", "0", "4"], "must be a positive integer"),
    (["--checkpoint", "{no_tokenizer}", "4"], "no tokenizer.json in"),
])
def test_translate_usage_errors_exit_2_with_one_line(argv, reason, numbers_run, tmp_path,
                                                     capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "checkpoint").symlink_to(numbers_run / "checkpoint")
    paths = {"missing": tmp_path / "nowhere", "run": numbers_run, "no_tokenizer": bare}
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", *(a.format(**paths) for a in argv)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert reason in err[-1] and "Traceback" not in "\n".join(err)


# ------------------------------------------------------------------------------------ metric


def test_sacrebleu_scores_are_sacrebleus_own():
    hyps = ["A dog runs in the snow .", "Two kids play on the beach", "a man rides a bike"]
    refs = ["A dog is running in the snow.", "Two children are playing on the beach.",
            "A man is riding a bicycle."]
    scores = sacrebleu_scores(hyps, refs)
    assert scores["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert scores["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    lower = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True, tokenize="13a").score
    assert scores["bleu_lowercase_13a"] == lower > scores["bleu"]
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "case:lc" in scores["bleu_lowercase_signature"]
    assert sacrebleu_scores(refs, refs)["bleu"] == pytest.approx(100)
    with pytest.raises(ValueError, match="as many, got 3 and 2"):
        sacrebleu_scores(hyps, refs[:2])


# ---------------------------------------------------------------------------------- bad input


def _write(path, lines, gz=False):
    text = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_misaligned_parallel_files_are_refused_naming_both_files_and_counts(tmp_path):
    de = _write(tmp_path / "x.de.gz", ["Ein Hund.", "Zwei Hunde.", "Drei."], gz=True)
    en = _write(tmp_path / "x.en", ["A dog.", "Two dogs."])
    with pytest.raises(ValueError, match=rf"{de} has 3 lines but {en} has 2"):
        read_parallel(de, en)


def test_empty_overlong_and_untokenizable_pairs_are_counted_and_reported(tmp_path):
    de = _write(tmp_path / "d.de", ["Ein Hund.", "", "Ein sehr langer Satz über Hunde",
                                    "Ein Hund!", "Hund"])
    en = _write(tmp_path / "d.en", ["A dog.", "Nothing", "A very long sentence", "A dog!",
                                    "   "])
    tokenizer = CharTokenizer.train("Ein Hund. A dog ")  # no '!' and no long words' letters
    encoded, lines, report = encode_pairs(read_parallel(de, en), tokenizer, max_tokens=12,
                                          name="tiny")
    assert (report.pairs, report.kept, report.empty, report.untokenizable, report.too_long) \
        == (5, 1, 2, 2, 0)
    assert lines == [1] and len(encoded) == 1
    assert report.examples == {"empty": [2, 5], "untokenizable": [3, 4]}
    assert str(report) == ("tiny: kept 1 of 5 pairs; left out: 2 empty (lines 2, 5), "
                           "2 untokenizable (lines 3, 4)")


def test_pairs_longer_than_the_limit_are_counted_as_too_long(tmp_path):
    pairs = [("kurz", "short"), ("ein viel zu langer satz", "a sentence far too long")]
    tokenizer = BPETokenizer.train([t for p in pairs for t in p], vocab_size=270)
    _, lines, report = encode_pairs(pairs, tokenizer, max_tokens=8, name="bpe")
    assert lines == [1] and report.too_long == 1 and report.examples["too_long"] == [2]
    assert "1 too long (lines 2)" in str(report)


def test_token_batches_respect_the_budget_and_shift_the_target_by_bos_and_eos():
    encoded = [([5] * n, [6] * (n + 1)) for n in range(1, 30)]
    batches = token_batches(encoded, max_tokens=40, bos_id=1, eos_id=2, pad_id=0)(0)
    assert sum(len(b["src"]) for b in batches) == len(encoded)
    for b in batches:
        assert b["src"].numel() <= 40 and b["tgt_in"].numel() <= 40
        assert (b["tgt_in"][:, 0] == 1).all()
        shifted = b["tgt_out"][:, :-1]  # the target without its EOS is tgt_in after BOS
        assert torch.equal(b["tgt_in"][:, 1:], torch.where(shifted == 2, 0, shifted))
        assert ((b["tgt_out"] == 2).sum(dim=1) == 1).all()  # one EOS per row


def test_translate_keeps_the_order_of_its_inputs(numbers_run):
    run, tokenizer = load_run(numbers_run), load_tokenizer(numbers_run)
    sources = ["1 2", "4 0 7", "3", "8 8 8"]
    assert translate(run.model, tokenizer, sources, batch_size=1) == \
        translate(run.model, tokenizer, sources, batch_size=64)
    with pytest.raises(ValueError, match="beam_size must be an integer >= 1, got 0"):
        translate(run.model, tokenizer, sources, beam_size=0)


def test_cross_attention_is_the_decoders_view_of_the_source_while_it_writes(numbers_run):
    run, tokenizer = load_run(numbers_run), load_tokenizer(numbers_run)
    model = run.model
    found = cross_attention(model, tokenizer, "4 0 7", "four hundred seven")
    src_ids, tgt_ids = tokenizer.encode("4 0 7"), tokenizer.encode("four hundred seven")
    assert found.source_tokens == ["4", "0", "7"]
    assert "".join(found.target_tokens[:-1]) == "fourhundredseven"
    assert found.target_tokens[-1] == tokenizer.decode([tokenizer.eos_id])
    config = model.config
    assert found.weights.shape == (config.n_layers, config.n_heads, len(tgt_ids) + 1,
                                   len(src_ids))
    torch.testing.assert_close(found.weights.sum(-1), torch.ones(found.weights.shape[:-1]))
    # the teacher-forced pass of attention_maps: BOS + target in
    expected = attention_maps(model, torch.tensor([src_ids]),
                              torch.tensor([[tokenizer.bos_id, *tgt_ids]]))["cross"][0]
    torch.testing.assert_close(found.weights, expected)
    # by default, the model's own translation
    own = cross_attention(model, tokenizer, "9 1 5", beam_size=4)
    assert " ".join(own.target_tokens[:-1]).split() == \
        translate(model, tokenizer, ["9 1 5"], beam_size=4)[0].split()
    stops = cross_attention(model, tokenizer, "3", "")  # a model that stops at once: EOS only
    assert stops.weights.shape[2] == 1 and len(stops.target_tokens) == 1


def test_cross_attention_refuses_an_empty_or_overlong_source(numbers_run):
    run, tokenizer = load_run(numbers_run), load_tokenizer(numbers_run)
    with pytest.raises(ValueError, match="source must encode to at least one id, got ''"):
        cross_attention(run.model, tokenizer, "", "zero")
    too_long = " ".join(["7"] * run.model.config.max_len)
    with pytest.raises(ValueError, match=r"source has \d+ ids; the model takes at most"):
        cross_attention(run.model, tokenizer, too_long, "seven")
    with pytest.raises(ValueError, match=r"target has \d+ ids; the model takes at most"):
        cross_attention(run.model, tokenizer, "7", " ".join(["seven"] * too_long.count("7")))


# ----------------------------------------------------------------------------------- multi30k


def test_multi30k_task_shares_one_bpe_vocabulary_and_ties_its_embeddings(dataset_file):
    for name in ("train.de.gz", "train.en.gz", "test_2016_flickr.de.gz",
                 "test_2016_flickr.en.gz"):
        dataset_file("multi30k", name)
    task, recipe = TASKS["multi30k"], TranslationRecipe(vocab_size=2000)
    config = task.model_config(recipe)
    assert config.tie_embeddings and config.vocab_size == task.tokenizer(recipe).vocab_size
    test = task.data(recipe, "test")
    assert len(test) == 1000 and test.report.kept == 1000
    assert test.source_texts[0] and test.references[0]
