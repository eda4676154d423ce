"""Models the course hands out already trained, each with the recipe that trained it.

Exercise 02's threshold task starts from a trained screening model, as a real screening
decision does: somebody trained the classifier, and a threshold is then chosen for it.
Handing it out trained spares every learner, and every submission the grader runs, a
``fit()`` that teaches nothing new there (about a quarter of that exercise's grading
time on a 2-core CPU). Each model is a ``.keras`` file beside this module; its recipe
(:data:`RECIPES`) is plain Keras, readable here, and
``python -m forge_course.pretrained`` trains and saves every model again. The tests
train each recipe and compare it with the shipped file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_course.errors import ForgeError

__all__ = ["RECIPES", "Recipe", "describe", "load", "path", "train"]

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one shipped model was trained."""

    name: str
    dataset: str
    validation_split: float  # the last rows of the training split, never trained on
    epochs: int
    batch_size: int
    learning_rate: float
    hidden_units: int
    seed: int
    build: Callable[[Recipe], Any]  # returns the trained model

    def fit_rows(self, n_train: int) -> int:
        """How many leading rows of the training split it trains on (Keras's own rule,
        the one exercise 02's checks hold the validation rows out by)."""
        from forge_course.grading.checks import validation_rows

        return n_train - validation_rows(n_train, self.validation_split)


def _breast_cancer_screen(recipe: Recipe):
    """Lesson 02's kind of classifier: scaling inside the model, one hidden layer, a
    sigmoid giving P(benign)."""
    import keras
    from keras import layers

    from forge_course.data import load as load_data

    ds = load_data(recipe.dataset, verbose=False)
    n_fit = recipe.fit_rows(len(ds.x_train))
    x_fit, y_fit = ds.x_train[:n_fit], ds.y_train[:n_fit]
    keras.utils.set_random_seed(recipe.seed)
    norm = layers.Normalization()
    norm.adapt(x_fit)  # scaling statistics from the rows it trains on, only
    model = keras.Sequential(
        [
            keras.Input(shape=(x_fit.shape[1],)),
            norm,
            layers.Dense(recipe.hidden_units, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ],
        name=recipe.name,
    )
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="binary_crossentropy")
    model.fit(x_fit, y_fit, epochs=recipe.epochs, batch_size=recipe.batch_size, verbose=0)
    return model


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="breast_cancer_screen", dataset="breast_cancer", validation_split=0.2,
            epochs=6, batch_size=32, learning_rate=0.01, hidden_units=16, seed=0,
            build=_breast_cancer_screen,
        ),
    ]
}  # fmt: skip


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ForgeError(
            f"no pretrained model named {name!r}; the course ships {', '.join(sorted(RECIPES))}"
        )
    return RECIPES[name]


def path(name: str) -> Path:
    """Where the shipped model ``name`` lives."""
    return HERE / f"{_recipe(name).name}.keras"


def describe(name: str) -> str:
    """One line on how ``name`` was trained, from its recipe."""
    r = _recipe(name)
    from forge_course.data import load as load_data

    n_train = len(load_data(r.dataset, verbose=False).x_train)
    return (
        f"{r.name}: trained on the first {r.fit_rows(n_train)} of {n_train} {r.dataset} "
        f"training rows (the rows fit() trains on with validation_split={r.validation_split}), "
        f"{r.epochs} epochs, batch {r.batch_size}, Adam({r.learning_rate}), seed {r.seed}"
    )


def load(name: str):
    """The shipped model ``name``, loaded in Keras's safe mode.

    Raises:
        ForgeError: no such model, or its file is missing (reinstall the course, or run
            ``python -m forge_course.pretrained`` to train it again).
    """
    import keras

    file = path(name)
    if not file.is_file():
        raise ForgeError(
            f"the pretrained model file {file} is missing; reinstall the course, or run "
            "`python -m forge_course.pretrained` to train it again"
        )
    return keras.saving.load_model(file, safe_mode=True)


def train(name: str):
    """Train ``name`` from its recipe (not saved)."""
    r = _recipe(name)
    return r.build(r)


def main(argv: list[str] | None = None) -> int:
    """Train every recipe (or those named) and save it beside this module."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m forge_course.pretrained", description=main.__doc__
    )
    parser.add_argument(
        "names", nargs="*", help=f"models to train (default: all of {sorted(RECIPES)})"
    )
    args = parser.parse_args(argv)
    for name in args.names or sorted(RECIPES):
        try:
            model = train(name)
        except ForgeError as exc:
            print(f"error: {exc}")
            return 2
        model.save(path(name))
        print(f"saved {path(name)}: {describe(name)}")
    return 0
