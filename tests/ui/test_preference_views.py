"""How the app shows preference data and runs, without a server: a pair's
two sides with the tokens each trains (TRL's own ids, decoded), the counts
per split, the facts the run summary counts steps with, and the objective's
settings shown only where they apply."""

import json

import pytest

gr = pytest.importorskip("gradio")

from finetune.data import dataset  # noqa: E402
from finetune.train.config import TrainConfig  # noqa: E402
from ui.views import data_views  # noqa: E402

PAIRS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "chosen": f"2021-03-{d:02d}",
          "rejected": f"{d}/3/2021, I think"} for d in range(1, 29)]


def prepared_from(write, tokenizer, rows, **settings):
    path = write("pairs.jsonl", "\n".join(json.dumps(r) for r in rows))
    config = TrainConfig(data=str(path), held_out=4, validation_fraction=0.1, **settings)
    return config, dataset.prepare(config, tokenizer)


def test_a_pair_shows_its_prompt_masked_and_each_reply_trained_as_its_side(write, tiny_tokenizer):
    config, prepared = prepared_from(write, tiny_tokenizer, PAIRS)
    example, encoded = prepared.train_pairs[0]
    sides = data_views.first_pair(tiny_tokenizer, prepared)
    assert [s["side"] for s in sides] == ["chosen", "rejected"]
    for side, reply_ids in zip(sides, (encoded.chosen_ids, encoded.rejected_ids)):
        text, entities = side["value"]["text"], side["value"]["entities"]
        assert [e["entity"] for e in entities] == ["prompt (masked)", side["side"]]
        prompt, reply = (text[e["start"]:e["end"]] for e in entities)
        # Exactly the tokens TRL's trainer builds: the prompt's ids, then the reply's.
        assert tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"] == encoded.prompt_ids
        assert reply == tiny_tokenizer.decode(reply_ids) and example.messages[-2]["content"] in prompt
        assert f"{len(reply_ids)} tokens trained as {side['side']}" in side["label"]
    assert example.response in sides[0]["value"]["text"] and example.rejected in sides[1]["value"]["text"]
    # The views: the supervised example hidden, both sides shown.
    example_view, chosen, rejected = data_views.side_views(sides)
    assert example_view["visible"] is False and chosen["visible"] and rejected["visible"]
    assert chosen["label"] == sides[0]["label"]
    # Supervised data: the example shown, the sides hidden.
    assert [u["visible"] for u in data_views.side_views(None)] == [True, False, False]


def test_unpaired_replies_show_one_side_labelled_desirable_or_not(write, tiny_tokenizer):
    rows = [{"prompt": r["prompt"], "completion": r["rejected"], "label": False} for r in PAIRS]
    _, prepared = prepared_from(write, tiny_tokenizer, rows)
    sides = data_views.first_pair(tiny_tokenizer, prepared)
    assert [s["side"] for s in sides] == ["undesirable"]
    assert sides[0]["value"]["entities"][-1]["entity"] == "undesirable"
    _, shown, hidden = data_views.side_views(sides)
    assert shown["visible"] and hidden["visible"] is False


def test_the_summary_gives_pairs_per_split_and_the_objectives_the_data_trains(write, tiny_tokenizer):
    rows = PAIRS + [dict(PAIRS[0], rejected=PAIRS[0]["chosen"])]  # one pair whose sides are equal: dropped
    config, prepared = prepared_from(write, tiny_tokenizer, rows)
    text = data_views.summary_markdown("pairs.jsonl", prepared.table, prepared)
    counts = (len(prepared.train_pairs), len(prepared.validation_pairs), len(prepared.held_out_pairs))
    assert f"| pairs | {counts[0]} | {counts[1]} | {counts[2]} |" in text and counts[2] == 4
    assert "preference pairs (prompt / chosen / rejected)" in text  # the detected preference format
    assert "DPO (preference pairs), KTO" in text
    advice = data_views.advice_view(prepared)
    assert "1 pair had the same chosen and rejected reply and was dropped" in advice
    found = data_views.details("pairs.jsonl", prepared.table, prepared)
    assert found["kind"] == "pair" and found["pairs"]["train"] == counts[0]


def test_the_run_facts_count_a_pair_once_for_dpo_and_twice_for_kto(write, tiny_tokenizer):
    config, prepared = prepared_from(write, tiny_tokenizer, PAIRS)
    facts = data_views.run_facts(config, prepared)
    pairs = len(prepared.train_pairs)
    assert facts["kind"] == "pair" and facts["units"]["dpo"][0] == pairs and facts["units"]["kto"][0] == 2 * pairs
    assert facts["units"]["sft"][0] == len(prepared.train)  # supervised on the chosen replies
    unpaired = [{"prompt": r["prompt"], "completion": r["chosen"], "label": True} for r in PAIRS]
    _, prepared = prepared_from(write, tiny_tokenizer, unpaired)
    assert set(data_views.run_facts(config, prepared)["units"]) == {"kto"}  # neither SFT nor DPO trains on it


# ------------------------------------------------------------------ the Hyperparameters tab

def test_the_objective_group_shows_only_the_settings_that_apply():
    from finetune.train.preference import objective_arguments
    from ui.tabs import params_tab

    group = params_tab.objective_fields()
    listed = {name for names in params_tab.OBJECTIVE_SETTINGS.values() for name in names}
    assert listed == set(group), "each objective setting is shown for some objective (a new one is not hidden)"
    shown = {o: [name for name, u in zip(group, params_tab.objective_views(o)) if u["visible"]]
             for o in params_tab.OBJECTIVE_SETTINGS}
    assert shown == {"sft": [], "dpo": ["beta", "dpo_loss", "precompute_ref"],
                     "kto": ["beta", "precompute_ref", "desirable_weight", "undesirable_weight"]}
    # What is shown is what the objective gives TRL.
    trl_names = {"beta": "beta", "dpo_loss": "loss_type", "precompute_ref": "precompute_ref_log_probs",
                 "desirable_weight": "desirable_weight", "undesirable_weight": "undesirable_weight"}
    for objective in ("dpo", "kto"):
        given = set(objective_arguments(TrainConfig(objective=objective)))
        assert {trl_names[name] for name in shown[objective]} <= given, objective


def test_the_run_summary_names_the_objective_and_counts_its_examples(write, tiny_tokenizer):
    from ui.tabs import params_tab

    config, prepared = prepared_from(write, tiny_tokenizer, PAIRS)
    facts = data_views.run_facts(config, prepared)
    pairs = len(prepared.train_pairs)
    common = dict(batch_size=4, grad_accum=1, epochs=1, max_steps=0)
    dpo, _ = params_tab.plan_summary(facts, False, objective="dpo", beta=0.2, **common)
    assert "DPO (preference pairs) (beta 0.2, loss sigmoid, reference log-probabilities computed once" in dpo
    assert f"**Optimizer steps:** {-(-pairs // 4)} (1 epochs of {pairs} pairs)" in dpo
    kto, _ = params_tab.plan_summary(facts, False, objective="kto", **common)
    assert f"**Optimizer steps:** {-(-2 * pairs // 4)} (1 epochs of {2 * pairs} replies)" in kto
    assert "desirable weight 1, undesirable weight 1" in kto
    lora, _ = params_tab.plan_summary(facts, False, objective="dpo", method="lora", learning_rate=1e-4, **common)
    assert "the base with the adapters switched off" in lora
    # Data the objective cannot train says so, in place of a step count.
    unpaired = [{"prompt": r["prompt"], "completion": r["chosen"], "label": True} for r in PAIRS]
    _, prepared = prepared_from(write, tiny_tokenizer, unpaired)
    refused, _ = params_tab.plan_summary(data_views.run_facts(config, prepared), False, objective="dpo", **common)
    assert "This data cannot train DPO" in refused and "use objective 'kto'" in refused
    assert "Optimizer steps" not in refused


def test_the_preference_presets_train_the_bundled_pairs_inside_the_recommended_ranges():
    from pathlib import Path

    from finetune.train import config as cfg
    from finetune.train.presets import PRESETS
    from ui.tabs.params_tab import PRESET_NOTES

    for name, objective in (("dpo-demo", "dpo"), ("kto-demo", "kto")):
        checked = cfg.build(preset=name)  # refused if a value were outside its recommended range
        assert checked.config.objective == objective and not checked.warnings
        assert checked.config.epochs == 1 and checked.config.beta == 0.1 and checked.config.method == "full"
        assert 5e-6 <= checked.config.learning_rate <= 2e-5
        assert Path(PRESETS[name]["data"]).name == "pairs.jsonl" and name in PRESET_NOTES


# ------------------------------------------------------------------ the Train tab

DPO_HISTORY = [
    {"step": 1, "loss": 0.69, "learning_rate": 1e-5, "rewards/chosen": 0.01, "rewards/rejected": -0.01,
     "rewards/margins": 0.02, "rewards/accuracies": 0.5, "logps/chosen": -20.0, "logps/rejected": -31.0},
    {"step": 2, "loss": 0.61, "learning_rate": 9e-6, "rewards/chosen": 0.05, "rewards/rejected": -0.09,
     "rewards/margins": 0.14, "rewards/accuracies": 0.75, "logps/chosen": -19.5, "logps/rejected": -32.0},
    {"step": 2, "eval_loss": 0.6, "eval_rewards/chosen": 0.04, "eval_rewards/rejected": -0.08,
     "eval_rewards/margins": 0.12, "eval_rewards/accuracies": 0.8, "eval_logps/chosen": -19.0,
     "eval_logps/rejected": -30.0},
]


def recorded_run(lab, name, objective, history):
    from finetune.runs.records import write_record

    folder = lab.output_root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "default", "objective": objective}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 2}))
    write_record(folder, status="completed", created_at=float(len(list(lab.output_root.iterdir()))))
    return folder


@pytest.fixture
def lab(tmp_path, tiny_model_dir):
    from finetune.sources.files import Limits
    from ui.lab import Lab

    return Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits())


def train_views(lab):
    from ui.tabs import compare_tab, train_tab

    with gr.Blocks():
        tab = train_tab.build(lab)
        compare = compare_tab.build(lab, 32)
    return tab, train_tab.views(lab, tab, compare, lab.scheduler.owner(""), None, force=True)


def test_a_dpo_run_plots_its_signals_beside_the_loss(lab):
    recorded_run(lab, "dpo-run", "dpo", DPO_HISTORY)
    tab, shown = train_views(lab)
    figures = {name: shown[plot] for name, plot in tab.signals.items()}
    assert all(f["visible"] for f in figures.values())
    traces = {name: {t.name: (t.x, t.y) for t in f["value"].data} for name, f in figures.items()}
    assert traces["rewards"]["margin (chosen - rejected) (training)"] == ((1, 2), (0.02, 0.14))
    assert traces["rewards"]["margin (chosen - rejected) (validation)"] == ((2,), (0.12,))
    assert traces["accuracy"]["preference accuracy (training)"] == ((1, 2), (0.5, 0.75))
    assert traces["accuracy"]["preference accuracy (validation)"] == ((2,), (0.8,))
    assert set(traces["logps"]) == {"chosen log-probability (training)", "rejected log-probability (training)",
                                    "chosen log-probability (validation)", "rejected log-probability (validation)"}
    assert shown[tab.loss].layout.yaxis.title.text == "DPO loss (pairs)"
    stats = shown[tab.stats]
    assert "val. pref. accuracy</div><div class='stat-value'>80%" in stats and "+0.140" in stats
    assert "perplexity" not in stats  # exp of a DPO loss is no perplexity


def test_a_supervised_run_looks_as_before(lab):
    recorded_run(lab, "sft-run", "sft", [{"step": 1, "loss": 2.0, "learning_rate": 1e-5},
                                         {"step": 1, "eval_loss": 2.1}])
    tab, shown = train_views(lab)
    assert all(shown[plot]["visible"] is False for plot in tab.signals.values())
    assert shown[tab.loss].layout.yaxis.title.text == "loss (response tokens)"
    assert "val. perplexity" in shown[tab.stats] and "pref. accuracy" not in shown[tab.stats]


def test_every_signal_of_every_objective_has_a_figure_on_the_train_tab():
    from finetune.train.objectives import SIGNALS
    from ui.views import plots

    drawn = set(plots.signal_plots())
    assert {s.plot for signals in SIGNALS.values() for s in signals} == drawn
    assert drawn <= set(plots.SIGNAL_PLOTS)  # each with its title and axis


# ------------------------------------------------------------------ the Experiments tab

def test_the_experiments_tab_offers_finished_runs_to_continue_from_and_shows_the_chain(lab):
    from finetune.runs.records import write_record
    from ui.tabs import experiments_tab

    sft = recorded_run(lab, "sft-run", "sft", [{"step": 1, "loss": 2.0}])
    (sft / "model").mkdir()
    (sft / "model" / "config.json").write_text("{}")
    dpo = recorded_run(lab, "dpo-run", "dpo", DPO_HISTORY)
    (dpo / "config.json").write_text(json.dumps({"model": "../sft-run/model", "objective": "dpo"}))
    write_record(dpo, status="completed", created_at=5.0)  # written as a run writes it: after its config.json
    waiting = recorded_run(lab, "waiting-run", "sft", [])
    write_record(waiting, status="queued", created_at=9.0)  # held by this (live) process: still waiting
    with gr.Blocks():
        tab = experiments_tab.build(lab)
    shown = experiments_tab.views(lab, tab, "local", None)
    offered = [value for _, value in shown[tab.continue_run]["choices"]]
    assert set(offered) == {"sft-run", "dpo-run"}, "a run can be continued from once it has ended"
    table = shown[tab.table]
    assert "from" in table.columns
    assert dict(zip(table["run"], table["from"]))["dpo-run"] == "sft-run (final)"


def test_the_length_histogram_counts_a_pair_by_its_prompt_and_longer_reply(write, tiny_tokenizer):
    _, prepared = prepared_from(write, tiny_tokenizer, PAIRS)
    counted, what = data_views.lengths(prepared)
    assert what == "pair" and len(counted) == len(PAIRS)
    example, encoded = prepared.train_pairs[0]
    assert encoded.longest == len(encoded.prompt_ids) + len(encoded.rejected_ids)  # "…, I think" is the longer
    assert encoded.longest in counted
