"""Configuration: each flag declared once (a field of ModelConfig/TrainConfig), and config.json that old runs wrote."""

from __future__ import annotations

import dataclasses
import json

import typer
from typer.testing import CliRunner

from minitx import rundir
from minitx.cli import app, config_options
from minitx.config import (
    PRESETS,
    ModelConfig,
    Preset,
    TrainConfig,
    flag_fields,
    flag_of,
    make_model_config,
    make_train_config,
    option_name,
)

runner = CliRunner()


def test_train_has_one_option_per_flag_field_with_the_fields_help():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for field in flag_fields(ModelConfig, TrainConfig):
        assert option_name(field) in result.output, field.name
        assert flag_of(field).help.split(" (")[0] in result.output, field.name


def test_flags_reach_the_configs_by_field_name():
    """What `config_options` hands a command is what make_*_config read: keys are field names."""
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @config_options(ModelConfig, exclude=("pos",))
    def show(flags: dict | None = None, name: str = "x") -> None:
        seen.update(flags, name=name)

    result = runner.invoke(demo, ["--layers", "3", "--no-bias", "--name", "y"])
    assert result.exit_code == 0, result.output
    assert seen["n_layers"] == 3 and seen["bias"] is False and seen["dim"] is None and seen["name"] == "y"
    assert "pos" not in seen
    assert runner.invoke(demo, ["--pos", "rope"]).exit_code == 2  # excluded: no such option
    model = make_model_config("tiny", seen, vocab_size=99)
    assert (model.n_layers, model.bias, model.dim, model.vocab_size) == (3, False, PRESETS["tiny"]["model"]["dim"], 99)


def test_choices_are_plain_strings_in_the_configs():
    demo = typer.Typer()
    seen = {}

    @demo.command()
    @config_options(TrainConfig)
    def show(flags: dict | None = None) -> None:
        seen.update(flags)

    assert runner.invoke(demo, ["--preset", "nanogpt-cpu", "--device", "cpu"]).exit_code == 0
    assert type(seen["preset"]) is str and type(seen["device"]) is str
    assert make_train_config(seen["preset"], seen).batch_size == PRESETS["nanogpt-cpu"]["train"]["batch_size"]
    assert [p.value for p in Preset] == list(PRESETS)


def test_every_preset_names_only_config_fields():
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not model_fields & train_fields  # one flags dict can hold both
    for name, recipe in PRESETS.items():
        assert set(recipe["model"]) <= model_fields, name
        assert set(recipe["train"]) <= train_fields, name


def test_a_config_json_with_the_old_extra_dict_still_loads(tmp_path):
    """Runs saved before the corpus fields were typed kept them in `train.extra`."""
    from minitx.text.tokenizer import Tokenizer

    Tokenizer.train_char("abc <|doc|>").save(tmp_path / rundir.TOKENIZER)
    vocab = Tokenizer.load(tmp_path / rundir.TOKENIZER).vocab_size
    rundir.save_config(tmp_path, ModelConfig(vocab_size=vocab), TrainConfig())
    raw = json.loads((tmp_path / rundir.CONFIG).read_text())
    for key in ("corpus", "corpus_files", "corpus_bytes", "corpus_sha256"):
        del raw["train"][key]
    raw["train"]["extra"] = {"corpus": "a.txt", "corpus_files": ["/data/a.txt"], "corpus_bytes": 12,
                             "corpus_sha256": "ab" * 32, "steps_given": True}
    (tmp_path / rundir.CONFIG).write_text(json.dumps(raw))
    tc = rundir.load_run(tmp_path).train_config
    assert (tc.corpus, tc.corpus_files, tc.corpus_bytes, tc.corpus_sha256) == ("a.txt", ["/data/a.txt"], 12, "ab" * 32)
