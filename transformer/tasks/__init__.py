"""Tasks: one entry per task, its data, tokenizer, model configuration, recipe and metric.

``TASKS`` is the table that ``transformer train TASK`` reads. Adding a task is one module
(``transformer/tasks/NAME.py``, defining its :class:`Task`) and one entry below. A task module
imports its optional dependencies (dataset or tokenizer libraries) inside the functions that
need them, never at import time, so the table loads with torch alone.

This layer builds on everything else (data, model, training, generation); only the command
line and the book sit above it.
"""

from transformer.tasks import language, numbers, synthetic, translation
from transformer.tasks.base import SPLITS, Metric, Recipe, Task, retune, setting, train_until
from transformer.tasks.synthetic import (
    EXACT_MATCH,
    SyntheticRecipe,
    exact_match,
    exact_match_rate,
)

# --8<-- [start:table]
TASKS: dict[str, Task] = {task.name: task for task in (
    synthetic.COPY,
    synthetic.REVERSE,
    synthetic.SORT,
    language.SHAKESPEARE,
    language.WIKITEXT2,
    numbers.NUMBERS,
    translation.MULTI30K,
)}
# --8<-- [end:table]

__all__ = [
    "EXACT_MATCH",
    "SPLITS",
    "TASKS",
    "Metric",
    "Recipe",
    "SyntheticRecipe",
    "Task",
    "exact_match",
    "exact_match_rate",
    "retune",
    "setting",
    "train_until",
]
