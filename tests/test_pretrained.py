"""The models the course hands out trained: each file is what its recipe trains."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from forge_course import pretrained
from forge_course.data import load
from forge_course.errors import ForgeError

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.mark.parametrize("name", sorted(pretrained.RECIPES))
def test_the_shipped_model_is_what_its_recipe_trains(name):
    shipped, trained = pretrained.load(name), pretrained.train(name)
    ds = load(pretrained.RECIPES[name].dataset, verbose=False)
    x = np.concatenate([ds.x_train, ds.x_test])
    assert [type(layer).__name__ for layer in shipped.layers] == [
        type(layer).__name__ for layer in trained.layers
    ]
    # bit for bit on the machine that saved it; other CPUs may round a little differently
    np.testing.assert_allclose(
        shipped.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-3
    )


def test_the_screen_never_saw_its_validation_rows():
    """Exercise 02 chooses a threshold on the last fifth of the training split."""
    recipe = pretrained.RECIPES["breast_cancer_screen"]
    n_train = len(load("breast_cancer", verbose=False).x_train)
    assert recipe.fit_rows(n_train) == int(n_train * 0.8) == 272
    line = pretrained.describe("breast_cancer_screen")
    assert "first 272 of 341" in line and "validation_split=0.2" in line


def test_an_unknown_or_missing_model_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ForgeError, match="ships breast_cancer_screen"):
        pretrained.load("cat_detector")
    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    with pytest.raises(ForgeError, match="python -m forge_course.pretrained"):
        pretrained.load("breast_cancer_screen")


def test_an_unknown_name_on_the_command_line_exits_2(capsys):
    assert pretrained.main(["cat_detector"]) == 2
    assert "no pretrained model named 'cat_detector'" in capsys.readouterr().out


def test_the_files_ship_in_the_package():
    """A wheel carries *.keras only if pyproject.toml says so."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["forge_course.pretrained"]
    for name in pretrained.RECIPES:
        path = pretrained.path(name)
        assert path.is_file() and any(path.match(g) for g in globs)
