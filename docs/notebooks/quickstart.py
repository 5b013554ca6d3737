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
# # Quickstart
#
# This page is a notebook: MkDocs executes it when the book is built, so what you see below is
# what the code printed. Softmax turns a row of scores into weights that sum to one:
#
# $$
# \operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}
# $$

# %%
import matplotlib.pyplot as plt
import torch

scores = torch.tensor([2.0, 1.0, 0.1])
weights = torch.softmax(scores, dim=-1)
assert torch.isclose(weights.sum(), torch.tensor(1.0))
weights

# %% [markdown]
# Dividing the scores by a temperature $T > 1$ flattens the weights:

# %%
fig, ax = plt.subplots(figsize=(4, 2.5))
for temperature in (0.5, 1.0, 4.0):
    ax.plot(torch.softmax(scores / temperature, dim=-1), "o-", label=f"T = {temperature}")
ax.set_xlabel("token")
ax.set_ylabel("weight")
ax.legend(frameon=False)
plt.show()
