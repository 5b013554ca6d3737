# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: ten minutes with the package
#
# [Open in Colab](https://colab.research.google.com/github/executable-transformer/executable-transformer/blob/notebooks/quickstart.ipynb)
# ·
# [Download the notebook](../quickstart.ipynb)
#
# This page is a notebook: the book executes it when it is built, so what you see below is
# what the code printed and drew. In Colab (or in a Jupyter without the package) the downloaded
# notebook starts with one more cell, which installs the package from the book's repository.
#
# In ten minutes: build an encoder-decoder Transformer, train it on the **copy task** (the
# target is the source, copied) until it copies every held-out sequence, decode with greedy and
# beam search, and look at where its attention goes. The chapters explain every piece; this
# page only uses them.

# %% [markdown]
# ## 1. A task, a model
#
# `transformer.tasks.TASKS` holds the tasks that `transformer train TASK` runs. Each one brings
# its data, its model configuration, its recipe (the run's settings) and its metric. The copy
# task's model is tiny: one layer in the encoder and in the decoder, width 32, four heads.

# %%
import torch

from transformer import Transformer, count_parameters
from transformer.tasks import TASKS

torch.set_num_threads(1)  # a model this small runs fastest on one thread
copy = TASKS["copy"]
recipe = copy.recipe(eval_size=200)  # check on 200 held-out sequences while training
config = copy.model_config(recipe)
model = Transformer(config)
print(config.d_model, config.n_heads, config.n_layers, f"{count_parameters(model)['total']:,}")
batch = next(iter(copy.data(recipe, "train")))
print({name: tuple(t.shape) for name, t in batch.items()})
print("source:", batch["src"][0].tolist())
print("target:", batch["tgt_out"][0].tolist())

# %% [markdown]
# Id 0 is padding, 1 the begin-of-sequence token `BOS` the decoder starts from, 2 the
# end-of-sequence token `EOS` it must end with; ordinary tokens are 3 to 12.
#
# ## 2. Train until it copies
#
# `Trainer` runs the paper's training (Adam with the warm-up schedule of eq. 3, label
# smoothing); `train_until` checks the exact match on held-out sequences every 50 steps and
# stops at the first perfect check. The run prints how long it took on the machine that built
# this page.

# %%
import time

from transformer.tasks import train_until
from transformer.training import Trainer, seed_everything

seed_everything(recipe.seed)
model = Transformer(config)
trainer = Trainer(model, recipe.train_config(progress=False, device="cpu"),
                  copy.data(recipe, "train"))
start = time.perf_counter()
history = train_until(trainer, copy.data(recipe, "valid"), copy.metric,
                      eval_every=recipe.eval_every)
checks = [(m["step"], m["exact_match"]) for m in history if "exact_match" in m]
print(f"{trainer.step} steps in {time.perf_counter() - start:.0f} s")
print("exact match after each round:", ", ".join(f"{rate:.1%}" for _, rate in checks))
test = copy.metric.compute(model, copy.data(recipe, "test"))
print(f"exact match on {recipe.eval_size} test sequences: {test:.1%}")
assert checks[-1][1] == 1.0 and test > 0.95

# %% [markdown]
# ## 3. Decode
#
# `generate` is the one entry point to the three searches of chapter 11: greedy, beam search
# with the paper's length penalty, and sampling. A source the model has never seen:

# %%
from transformer.data.synthetic import BOS, EOS
from transformer.generation import generate

model.eval()
src = torch.tensor([[7, 12, 3, 3, 9, 5, 11, 4]])  # "3" twice
greedy = generate(model, src, strategy="greedy", bos_id=BOS, eos_id=EOS)
beam = generate(model, src, strategy="beam", beam_size=4, alpha=0.6, bos_id=BOS, eos_id=EOS)
print("greedy:", greedy.sequences[0].tolist(), f"score {greedy.scores[0]:.3f}")
print("beam:  ", beam.sequences[0].tolist(), f"score {beam.scores[0]:.3f}")
assert greedy.sequences[0, :-1].tolist() == src[0].tolist()
assert greedy.sequences[0, -1] == EOS

# %% [markdown]
# ## 4. Look inside
#
# `transformer.viz.attention_maps` records every attention weight of one forward pass; here the
# decoder's cross-attention while it writes the copy. Row $t$ is the step that outputs the
# $t$-th token, a distribution over the source positions: the model looks at position $t$
# to write token $t$, even where the same token appears twice.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

from transformer.viz import attention_maps, plot_attention

out = greedy.sequences  # (1, 9): the copy, then EOS
tgt_in = torch.cat([torch.tensor([[BOS]]), out[:, :-1]], dim=1)  # what the decoder was fed
cross = attention_maps(model, src, tgt_in)["cross"]  # (batch, layers, heads, 9, 8)
print(tuple(cross.shape))
weights = cross[0, 0]  # (heads, 9, 8): the one layer's four heads
assert (weights.mean(0)[:8].argmax(-1) == torch.arange(8)).all()  # the diagonal
fig = plot_attention(weights, queries=[str(t) for t in out[0, :-1].tolist()] + ["EOS"],
                     keys=[str(t) for t in src[0].tolist()], xlabel="source", ylabel="output")
plt.show()

# %% [markdown]
# ## Where next
#
# - the model, piece by piece: chapters 1 to 8, from embeddings to the full model;
# - how it was trained and how it decodes: chapters 9 to 11;
# - what it learned: chapter 14, *Looking inside*;
# - every paper setting and the code that holds it: Appendix A.
