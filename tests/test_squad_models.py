"""SQuAD models: the exact best-span search against brute force, windows and features, the span
loss against torch's cross-entropy, a tiny extractive and generative training run whose loss
falls, the run format, and ``transformer answer``."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
import torch
from torch import nn

from transformer.cli import main
from transformer.data.squad import SquadExample
from transformer.model import Transformer, TransformerConfig
from transformer.qa import SpanExtractor, best_span, build_features, span_loss, windows
from transformer.tasks.squad_models import (
    QASettings,
    SpanLoss,
    answer_question,
    encode_questions,
    extractive_batches,
    extractive_config,
    extractive_features,
    generative_batches,
    generative_pairs,
    load_qa_run,
    new_trainer,
    predict_generative,
    predict_spans,
    save_qa_run,
    train_for,
    train_qa_tokenizer,
)

# ------------------------------------------------------------------ a tiny synthetic SQuAD

NAMES = ["Alice", "Bruno", "Chen", "Dora", "Emil", "Fatima", "Goran", "Hana"]
CITIES = ["Paris", "Lagos", "Quito", "Oslo", "Lima", "Hanoi", "Accra", "Riga"]


def synthetic_examples(n: int, seed: int = 0) -> list[SquadExample]:
    """Contexts naming where two people were born; the question asks for one of them."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        a, b = rng.sample(NAMES, 2)
        ca, cb = rng.sample(CITIES, 2)
        context = f"{a} was born in {ca}. Later {b} was born in {cb}, far away."
        who, city = (a, ca) if rng.random() < 0.5 else (b, cb)
        start = context.index(f"born in {city}") + len("born in ")
        out.append(SquadExample(id=f"q{k}", title="synthetic", article_index=0,
                                paragraph_index=k, context=context,
                                question=f"Where was {who} born?", answers=((city, start),),
                                aligned=(True,)))
    return out


SETTINGS = QASettings(max_len=48, max_question=12, stride=16)


@pytest.fixture(scope="module")
def tokenizer():
    return train_qa_tokenizer(synthetic_examples(200), vocab_size=300)


@pytest.fixture(scope="module")
def trained(tokenizer, tmp_path_factory):
    """A tiny span model trained for 60 steps; its run directory and training figures."""
    examples = synthetic_examples(200)
    encoded = encode_questions(examples, tokenizer)
    features = extractive_features(encoded, tokenizer, SETTINGS, training=True)
    torch.manual_seed(0)
    model = SpanExtractor(extractive_config(tokenizer.vocab_size, d_model=32, n_heads=2,
                                            d_ff=64, n_layers=1, max_len=SETTINGS.max_len))
    trainer = new_trainer(model, warmup=20, batches=extractive_batches(
        features, 16, tokenizer.pad_id, 0), loss_fn=SpanLoss())
    figures = train_for(trainer, steps=60)
    run = save_qa_run(tmp_path_factory.mktemp("runs") / "extractive", trainer, tokenizer,
                      SETTINGS)
    return run, figures, model


# ------------------------------------------------------------------ span decoding


def brute_force_span(start, end, allowed, max_span):
    best = None
    for i in range(len(start)):
        for j in range(i, min(len(start), i + max_span + 1)):
            if allowed[i] and allowed[j]:
                score = float(start[i]) + float(end[j])
                if best is None or score > best[2]:
                    best = (i, j, score)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_best_span_is_the_brute_force_maximum_over_allowed_pairs(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 40, (1,), generator=g))
    start, end = torch.randn(n, generator=g), torch.randn(n, generator=g)
    allowed = torch.rand(n, generator=g) < 0.7
    allowed[int(torch.randint(0, n, (1,), generator=g))] = True
    max_span = int(torch.randint(0, 16, (1,), generator=g))
    i, j, score = best_span(start, end, allowed, max_span)
    want = brute_force_span(start.tolist(), end.tolist(), allowed.tolist(), max_span)
    assert (i, j) == want[:2]
    assert score == pytest.approx(want[2])
    assert allowed[i] and allowed[j] and i <= j <= i + max_span


def test_best_span_never_returns_an_end_before_the_start():
    start = torch.tensor([0.0, 0.0, 9.0])  # the best start is last ...
    end = torch.tensor([9.0, 0.0, 0.0])  # ... the best end first: not a span
    i, j, _ = best_span(start, end)
    assert i <= j
    assert (i, j) in {(0, 0), (2, 2)}  # 9 + 0 either way; ties go to the smallest i
    assert (i, j) == (0, 0)


def test_best_span_rejects_bad_input_with_a_clear_message():
    with pytest.raises(ValueError, match="1-D of one length"):
        best_span(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="no position is allowed"):
        best_span(torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="max_span"):
        best_span(torch.zeros(3), torch.zeros(3), max_span=-1)


# ------------------------------------------------------------------ windows and features


@pytest.mark.parametrize(("n", "size", "stride"), [(5, 8, 4), (8, 8, 4), (9, 8, 4),
                                                   (100, 30, 7), (31, 30, 30)])
def test_windows_cover_every_token_and_end_at_the_last(n, size, stride):
    starts = windows(n, size, stride)
    covered = {t for s in starts for t in range(s, min(s + size, n))}
    assert covered == set(range(n))
    assert min(starts[-1] + size, n) == n
    assert all(b - a <= stride for a, b in pairwise(starts))


def test_offsets_give_back_the_characters_of_each_token(tokenizer):
    text = "Alice was born in  Paris, far away.\nChen"
    ids, offsets = tokenizer.encode_with_offsets(text)
    assert ids == tokenizer.encode(text)
    for i, (a, b) in zip(ids, offsets, strict=True):
        assert tokenizer.decode([i]).strip() == text[a:b].strip()
        assert text[a:b] == text[a:b].lstrip() or not text[a:b].strip()  # no leading space


def test_features_put_the_gold_span_on_the_answer_tokens(tokenizer):
    examples = synthetic_examples(30, seed=1)
    encoded = encode_questions(examples, tokenizer)
    for e, q, in zip(examples, encoded, strict=True):
        for f in build_features(0, q.question_ids, q.context_ids, q.matches,
                                bos_id=tokenizer.bos_id, sep_id=3, eos_id=tokenizer.eos_id,
                                max_len=20, max_question=8, stride=4, answer=q.answer,
                                only_answer_windows=True):
            first = f.first + f.start - f.offset
            last = f.first + f.end - f.offset
            a, b = q.context_offsets[first][0], q.context_offsets[last][1]
            assert e.context[a:b] == e.answer_texts[0]
            assert f.allowed[f.start] and f.allowed[f.end]
            assert len(f.tokens) <= 20


def test_exact_match_feature_marks_context_tokens_of_the_question(tokenizer):
    (e,), (q,) = synthetic_examples(1), encode_questions(synthetic_examples(1), tokenizer)
    marked = {e.context[a:b].strip() for (a, b), m in zip(q.context_offsets, q.matches,
                                                           strict=True) if m}
    who = e.question.split()[2]
    assert who in marked and "born" in marked and "far" not in marked


# ------------------------------------------------------------------ model and loss


def test_span_extractor_gives_one_start_and_end_logit_per_token():
    model = SpanExtractor(TransformerConfig.tiny(vocab_size=20, max_len=16))
    tokens = torch.randint(1, 20, (3, 10))
    start, end = model(tokens, torch.zeros_like(tokens), torch.ones_like(tokens))
    assert start.shape == end.shape == (3, 10)
    with pytest.raises(ValueError, match="one shape"):
        model(tokens, torch.zeros(3, 9, dtype=torch.long), torch.zeros_like(tokens))


def test_span_loss_is_cross_entropy_over_the_allowed_positions():
    g = torch.Generator().manual_seed(0)
    start, end = torch.randn(4, 9, generator=g), torch.randn(4, 9, generator=g)
    allowed = torch.zeros(4, 9, dtype=torch.bool)
    allowed[:, 3:8] = True
    gold_s, gold_e = torch.tensor([3, 4, 5, 7]), torch.tensor([4, 4, 7, 7])
    ce = nn.CrossEntropyLoss(reduction="sum")  # over the context positions 3..7 alone
    want = ce(start[:, 3:8], gold_s - 3) + ce(end[:, 3:8], gold_e - 3)
    assert span_loss(start, end, allowed, gold_s, gold_e) == pytest.approx(float(want))
    with pytest.raises(ValueError, match="allowed"):
        span_loss(start, end, allowed, torch.tensor([0, 4, 5, 7]), gold_e)


# ------------------------------------------------------------------ training and the run


def test_span_training_lowers_the_loss(trained):
    _, figures, _ = trained
    assert figures["steps"] == 60
    assert figures["final_loss"] < 0.7 * figures["first_loss"]


def test_predictions_are_spans_of_the_context(trained, tokenizer):
    _, _, model = trained
    examples = synthetic_examples(20, seed=2)
    predictions = predict_spans(model, examples, tokenizer, SETTINGS)
    assert set(predictions) == {e.id for e in examples}
    for e in examples:
        assert predictions[e.id] and predictions[e.id] in e.context


def test_long_contexts_are_read_in_windows_and_answered_from_any(trained, tokenizer):
    _, _, model = trained
    filler = " ".join(["far away"] * 40)
    context = f"{filler}. Chen was born in Oslo. {filler}."
    answer = answer_question(model, tokenizer, SETTINGS, context, "Where was Chen born?")
    assert answer in context and len(tokenizer.encode(context)) > 2 * SETTINGS.max_len


def test_run_directory_rebuilds_the_same_model(trained, tokenizer):
    run, _, model = trained
    loaded, loaded_tokenizer, settings = load_qa_run(run)
    assert isinstance(loaded, SpanExtractor) and settings == SETTINGS
    assert loaded_tokenizer.encode("Lima") == tokenizer.encode("Lima")
    tokens = torch.randint(4, tokenizer.vocab_size, (2, 12))
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(tokens, tokens * 0, tokens * 0),
                        loaded(tokens, tokens * 0, tokens * 0), strict=True):
            torch.testing.assert_close(a, b)


def test_generative_pipeline_trains_and_answers_every_question(tokenizer):
    examples = synthetic_examples(100)
    encoded = encode_questions(examples, tokenizer)
    pairs = generative_pairs(encoded, examples, tokenizer, SETTINGS, training=True)
    assert all(t[-1] == tokenizer.eos_id and len(s) <= SETTINGS.max_len for s, t in pairs)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.tiny(vocab_size=tokenizer.vocab_size,
                                               max_len=SETTINGS.max_len))
    trainer = new_trainer(model, warmup=20, batches=generative_batches(pairs, 16, tokenizer, 0))
    figures = train_for(trainer, steps=40)
    assert figures["final_loss"] < figures["first_loss"]
    predictions = predict_generative(model, examples[:8], tokenizer, SETTINGS)
    assert set(predictions) == {e.id for e in examples[:8]}
    assert all(isinstance(p, str) for p in predictions.values())


# ------------------------------------------------------------------ transformer answer


def test_answer_command_prints_a_span_of_the_context(trained, capsys):
    run, _, _ = trained
    context = "Dora was born in Lima. Later Emil was born in Riga, far away."
    assert main(["answer", "--checkpoint", str(run), "--context", context,
                 "--question", "Where was Emil born?"]) == 0
    out = capsys.readouterr().out.strip()
    assert out and out in context


@pytest.mark.parametrize(("argv", "message"), [
    (["--context", "x", "--question", " "], "argument --question: expected some text"),
    (["--context", "", "--question", "Who?"], "argument --context: expected some text"),
])
def test_answer_command_rejects_empty_text_in_one_line(trained, capsys, argv, message):
    run, _, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        main(["answer", "--checkpoint", str(run), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_answer_command_rejects_a_missing_run_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["answer", "--checkpoint", str(tmp_path / "nope"), "--context", "a b",
              "--question", "b?"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("transformer answer: error: argument --checkpoint: cannot load")
    assert len(err.splitlines()) == 1


def test_answer_command_has_help_naming_its_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["answer", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: transformer answer")
    assert all(option in out for option in ("--checkpoint", "--context", "--question"))


def test_answer_command_rejects_a_run_that_is_not_squad(tmp_path, capsys):
    model = Transformer(TransformerConfig.tiny(vocab_size=20))
    trainer = new_trainer(model, batches=lambda epoch: iter([]))
    trainer.save(tmp_path / "run" / "checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["answer", "--checkpoint", str(tmp_path / "run"), "--context", "a b",
              "--question", "b?"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "is not a SQuAD run" in err and len(err.splitlines()) == 1
