"""Tab 4b, Chat (after Compare): talk with a finished run's base and trained
model side by side, each answer streamed as it is generated (one model after
the other: a server answers one question at a time), in the run's own chat
template and system prompt, with sampling settings that say what they do;
and, where llama-cpp-python is installed, the trained model's GGUF beside them.

Side by side becomes data: mark which answer of a turn is better (a preference
pair) or edit an answer into the one wanted (a supervised example), saved in
the person's own files (finetune.data.collected) that the Data tab offers.

The conversation lives in the page's session (a gr.State); the models are
held while the conversation goes on and let go after an idle while
(finetune.export.chat_models.HeldModels)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from finetune.data.collected import CollectedData
from finetune.evaluate.ask import QUESTION_MAX_CHARS
from finetune.evaluate.conversation import EDIT_MAX_CHARS, Conversation, Turn, edited_examples, preference_pair
from finetune.evaluate.sampling import MAX_NEW_TOKENS, RANGES, SAMPLING_HELP, SEED_MAX, Sampling
from finetune.export.chat_models import HeldModels, RunModels, gguf_available, load_gguf, load_transformers, \
    run_models
from finetune.runs.records import NoSuchRun
from finetune.sources import models
from finetune.train import config as cfg
from ui import limits
from ui.lab import Lab, user_error
from ui.tabs import compare_tab
from ui.views.chat_views import COLUMNS, chat_messages, saved_line, status_line

TEMPLATES = [("The run's own", ""), ("auto", "auto"), ("chat", "chat"), ("alpaca", "alpaca")]
BETTER = [("Base", "base"), ("Trained", "trained"), ("Neither (unmark)", "")]
SIDES = [("Base", "base"), ("Trained", "trained")]
MAX_TURNS = 1_000  # the turn picker's bound: a conversation is refused long before (CONVERSATION_MAX_CHARS)


@dataclass
class Chats:
    """What the tab keeps between requests: the models held for conversations, and
    each owner's Stop (one answer at a time per owner)."""

    models: HeldModels = field(default_factory=HeldModels)
    stops: dict[str, threading.Event] = field(default_factory=dict)


@dataclass
class ChatTab:
    run: gr.Dropdown
    which: gr.Radio
    template: gr.Dropdown
    system_prompt: gr.Textbox
    greedy: gr.Checkbox
    temperature: gr.Slider
    top_p: gr.Slider
    max_new_tokens: gr.Slider
    repetition_penalty: gr.Slider
    seed: gr.Number
    gguf: gr.Checkbox
    columns: dict  # answerer -> gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    regenerate: gr.Button
    clear: gr.Button
    turn: gr.Number
    better: gr.Radio
    mark: gr.Button
    side: gr.Radio
    edited: gr.Textbox
    save_edit: gr.Button
    note: gr.Markdown
    saved: gr.Markdown
    conversation: gr.State
    chats: Chats

    def sampling_inputs(self) -> list:
        return [self.greedy, self.temperature, self.top_p, self.max_new_tokens, self.repetition_penalty, self.seed]

    def views(self) -> list:
        return [*self.columns.values(), self.note, self.saved]


def build(lab: Lab, max_new_tokens: int) -> ChatTab:
    gr.Markdown("Talk with a finished run's models: the base model and the trained one answer each message side by "
                "side, streamed as they write (one after the other: this server answers one question at a time). "
                "Mark the better answer, or edit one into the answer you wanted: both become training data.")
    with gr.Row(equal_height=True):
        run = gr.Dropdown([("Your latest run", compare_tab.LATEST)], value=compare_tab.LATEST, label="Run", scale=3,
                          allow_custom_value=True, elem_id="chat-run", info="Any finished run of yours.")
        which = gr.Radio([("Best checkpoint", "best"), ("Final model", "final")], value="best", label="Its model",
                         scale=2, info="Best: the lowest validation loss (the final model when it kept none).")
        gguf = gr.Checkbox(False, label="Also its GGUF (llama.cpp)", visible=gguf_available(), scale=1,
                           info="The trained model exported as f16 GGUF, answered by llama-cpp-python.")
    with gr.Accordion("Rendering and sampling", open=False):
        with gr.Row():
            template = gr.Dropdown(TEMPLATES, value="", label="Template", info="How the conversation is rendered.")
            system_prompt = gr.Textbox("", label="System prompt", max_length=cfg.SYSTEM_PROMPT_MAX_CHARS,
                                       placeholder="Empty: the run's own system prompt")
        with gr.Row():
            defaults = Sampling()
            greedy = gr.Checkbox(defaults.greedy, label="Greedy", info=SAMPLING_HELP["greedy"])
            temperature = gr.Slider(*RANGES["temperature"], value=defaults.temperature, step=0.05,
                                    label="Temperature", info=SAMPLING_HELP["temperature"])
            top_p = gr.Slider(*RANGES["top_p"], value=defaults.top_p, step=0.05, label="Top p",
                              info=SAMPLING_HELP["top_p"])
        with gr.Row():
            limit = gr.Slider(1, MAX_NEW_TOKENS, value=max_new_tokens, step=1, label="Max new tokens",
                              info=SAMPLING_HELP["max_new_tokens"] + (f" (at most {limits.PUBLIC_MAX_NEW_TOKENS} "
                                                                      "here)" if lab.public else ""))
            repetition = gr.Slider(*RANGES["repetition_penalty"], value=defaults.repetition_penalty, step=0.05,
                                   label="Repetition penalty", info=SAMPLING_HELP["repetition_penalty"])
            seed = gr.Number(defaults.seed, precision=0, minimum=0, maximum=SEED_MAX, label="Seed",
                             info=SAMPLING_HELP["seed"])
    with gr.Row(equal_height=False):
        columns = {name: gr.Chatbot([], label=COLUMNS[name], height=380, elem_id=f"chat-{name}",
                                    visible=name != "gguf", min_width=300, buttons=["copy"])
                   for name in COLUMNS}
    message = gr.Textbox(label="Your message", lines=1, max_lines=8, max_length=QUESTION_MAX_CHARS,
                         elem_id="chat-message",
                         placeholder="Rendered with the run's chat template and system prompt. Enter sends.")
    with gr.Row():
        send = gr.Button("Send", variant="primary", elem_id="chat-send")
        stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
        regenerate = gr.Button("Regenerate", elem_id="chat-regenerate")
        clear = gr.Button("Clear", elem_id="chat-clear")
    note = gr.Markdown(status_line(None, {}, "", "", None), elem_id="chat-note", elem_classes="lab-muted")
    gr.Markdown("### Make it data")
    with gr.Row(equal_height=True):
        turn = gr.Number(0, precision=0, minimum=0, maximum=MAX_TURNS, label="Turn",
                         info="1 is the first; 0 the latest.", scale=1, min_width=120)
        better = gr.Radio(BETTER, value="trained", label="Which answer of that turn is better?", scale=3)
        mark = gr.Button("Save my choice", scale=1, elem_id="chat-mark")
    with gr.Row(equal_height=True):
        side = gr.Radio(SIDES, value="trained", label="Edit whose answer", scale=1)
        edited = gr.Textbox("", label="The answer you wanted", lines=2, max_length=EDIT_MAX_CHARS, scale=3,
                            placeholder="Empty: undo an edit")
        save_edit = gr.Button("Save the edit", scale=1, elem_id="chat-edit")
    saved = gr.Markdown(saved_line({}), elem_id="chat-saved")
    return ChatTab(run, which, template, system_prompt, greedy, temperature, top_p, limit, repetition, seed, gguf,
                   columns, message, send, stop, regenerate, clear, turn, better, mark, side, edited, save_edit,
                   note, saved, gr.State(None), Chats())


# ------------------------------------------------------------------ the engine, for one request

def sampling_from(lab: Lab, greedy, temperature, top_p, max_new_tokens, repetition_penalty, seed) -> Sampling:
    """The request's sampling, checked; max_new_tokens capped in public mode (ui.limits)."""
    try:
        tokens = limits.answer_tokens(max_new_tokens, lab.public)
        return Sampling(greedy, float(temperature), float(top_p), tokens, float(repetition_penalty),
                        int(seed)).checked()
    except ValueError as err:  # cfg.ConfigError is one
        raise user_error(err) from None


def finished_run(lab: Lab, owner: str, run_id: str, which: str) -> tuple[str, RunModels]:
    """(the run's id, its models): the caller's own finished run (default: the latest);
    someone else's run id is answered like a missing one."""
    try:
        shown = lab.run(owner, run_id or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    if shown is None:
        raise user_error("No run yet: train one on the Train tab, then talk with it here.")
    if not shown.snapshot.finished:
        raise user_error("This run is still training; talk with it when it ends.")
    try:
        return shown.folder.name, run_models(shown.folder, which, lab.resolve)
    except ValueError as err:  # ExportError (no model), ModelError (its base cannot be found)
        raise user_error(err) from None


def model_loader(found: RunModels, run_id: str, answerer: str):
    """(the key the model is held under, how to load it). The trained folder's time is in
    the key: a resumed run that keeps a later best replaces the folder, and is loaded again."""
    if answerer == "base":
        return ("base", found.base.location), lambda: load_transformers(found.base)
    trained, stamp = found.trained, found.trained.stat().st_mtime_ns
    if answerer == "gguf":
        return ("gguf", str(trained), stamp), lambda: load_gguf(trained, f"{run_id} ({found.which}, GGUF)")
    source = models.ModelSource("local", str(trained), f"{run_id} ({found.which})")
    return ("trained", str(trained), stamp), lambda: load_transformers(source)


def own_conversation(conversation: Conversation | None, owner: str) -> Conversation:
    if conversation is None or conversation.owner != owner:
        raise user_error("No conversation yet: send a message first.")
    return conversation


def collected(lab: Lab, owner: str) -> CollectedData:
    return CollectedData(lab.output_root, owner)


def saved_view(lab: Lab, owner: str) -> str:
    data = collected(lab, owner)
    return saved_line(data.counts(), None if lab.public else str(data.folder))  # no server path in public mode


@dataclass
class TurnPlan:
    """One turn to answer: the conversation and its turn, the run's models, how it is rendered and sampled."""

    conversation: Conversation
    turn: Turn
    run: str
    found: RunModels
    template: str
    system: str
    sampling: Sampling
    answerers: list[str]


def plan_turn(lab: Lab, conversation, owner: str, message: str | None, run_id, which, template, system_prompt,
              sampling: Sampling, gguf: bool) -> TurnPlan:
    """Everything checked before any model loads: a new turn for `message`, or the last one
    again when it is None (its saved pair and edits go: its answers change)."""
    if gguf and not gguf_available():
        raise user_error("llama-cpp-python is not installed here, so no GGUF can answer; leave gguf off")
    try:
        limits.check_settings(system_prompt=system_prompt or None)
    except ValueError as err:
        raise user_error(err) from None
    run, found = finished_run(lab, owner, run_id, which)
    if conversation is None or (conversation.owner, conversation.run_id, conversation.which) != (
            owner, run, found.which):
        if message is None:
            raise user_error("There is no answer to regenerate yet: send a message first.")
        conversation = Conversation(owner, run, found.which)  # another run, another conversation
    system = (system_prompt or "").strip() or found.system_prompt
    try:
        turn = conversation.start_turn(message, system) if message is not None else \
            forget(lab, owner, conversation, conversation.redo_last(system))
    except ValueError as err:
        raise user_error(err) from None
    return TurnPlan(conversation, turn, run, found, template or found.template, system, sampling,
                    ["base", "trained", *(["gguf"] if gguf else [])])


def answer_turn(lab: Lab, tab: ChatTab, owner: str, plan: TurnPlan):
    """Stream the turn's answers model after model, each yield every view and the
    conversation; the person's Stop ends it at the next token."""
    conversation, turn = plan.conversation, plan.turn
    labels = {"base": plan.found.base.label, "trained": f"{plan.run} ({plan.found.which})"}
    saved, deadline = saved_view(lab, owner), limits.answer_seconds(lab.public)
    stop = tab.chats.stops[owner] = threading.Event()

    def views(answering=None) -> dict:
        line = status_line(conversation, labels, plan.template, plan.system, plan.sampling, answering)
        return {**{column: chat_messages(conversation, name) for name, column in tab.columns.items()},
                tab.note: line, tab.saved: saved, tab.conversation: conversation}

    try:
        for answerer in plan.answerers:
            if stop.is_set():
                break
            asked = conversation.ask(turn, answerer)
            yield views(answerer)
            key, load = model_loader(plan.found, plan.run, answerer)
            with tab.chats.models.use(key, load) as loaded:
                started = time.monotonic()  # the deadline is the answer's, not the load's
                for text in loaded.answer(asked, plan.template, plan.sampling, stop, deadline):
                    turn.answers[answerer] = text.strip()
                    yield views(answerer)
            turn.answers.setdefault(answerer, "")
            if stop.is_set():
                turn.notes[answerer] = "stopped"
            elif deadline is not None and time.monotonic() - started >= deadline:
                turn.notes[answerer] = f"cut short: answers stop after {deadline:g} s here"
    except (ValueError, OSError) as err:  # ModelError, a conversation too long for the model, a full disk
        conversation.turns.remove(turn)
        raise user_error(err) from None
    finally:
        if tab.chats.stops.get(owner) is stop:
            del tab.chats.stops[owner]
    yield views()


def forget(lab: Lab, owner: str, conversation: Conversation, turn: Turn) -> Turn:
    """A turn answered again: what was saved from its earlier answers goes."""
    number, data = conversation.turns.index(turn) + 1, collected(lab, owner)
    data.put("pairs", conversation.key(number), None)
    for side in ("base", "trained"):
        data.put("sft", f"{conversation.key(number)}-{side}", None)
    return turn


def mark_turn(lab: Lab, conversation, owner: str, turn: int, better: str) -> Conversation:
    """Mark one answer of a turn better and save the pair (or unmark it, and remove it)."""
    conversation = own_conversation(conversation, owner)
    try:
        marked = conversation.mark(turn, better or None)
        collected(lab, owner).put("pairs", conversation.key(turn), preference_pair(marked))
    except ValueError as err:
        raise user_error(err) from None
    return conversation


def edit_turn(lab: Lab, conversation, owner: str, turn: int, side: str, text: str) -> Conversation:
    """Edit one answer of a turn into the one wanted and save it as an example (and the
    turn's pair again, when it is marked: its answer changed)."""
    conversation = own_conversation(conversation, owner)
    try:
        changed = conversation.edit(turn, side, text)
        data, key = collected(lab, owner), conversation.key(turn)
        data.put("sft", f"{key}-{side}", edited_examples(changed).get(side))
        data.put("pairs", key, preference_pair(changed))
    except ValueError as err:
        raise user_error(err) from None
    return conversation


def stop_answer(tab: ChatTab, owner: str) -> str:
    stop = tab.chats.stops.get(owner)
    if stop is None:
        return "Nothing of yours is answering."
    stop.set()
    return "Stopping at the next token…"


# ------------------------------------------------------------------ wiring

def wire(lab: Lab, tab: ChatTab, owner_key, shown: gr.Tab) -> None:
    settings = [tab.run, tab.which, tab.template, tab.system_prompt, *tab.sampling_inputs(), tab.gguf]
    streamed = [*tab.columns.values(), tab.note, tab.saved, tab.conversation]
    # One answer at a time in the whole server, shared with the Compare tab's questions: each loads models.
    one_at_a_time = dict(concurrency_limit=limits.ASK_CONCURRENCY, concurrency_id="ask")

    def send(message, run_id=None, which="best", template="", system_prompt="", greedy=False, temperature=0.7,
             top_p=0.9, max_new_tokens=96, repetition_penalty=1.1, seed=0, gguf=False, owner_key=None,
             conversation=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        sampling = sampling_from(lab, greedy, temperature, top_p, max_new_tokens, repetition_penalty, seed)
        plan = plan_turn(lab, conversation, owner, message or "", run_id, which, template, system_prompt, sampling,
                         gguf)
        yield from answer_turn(lab, tab, owner, plan)

    def regenerate(run_id=None, which="best", template="", system_prompt="", greedy=False, temperature=0.7,
                   top_p=0.9, max_new_tokens=96, repetition_penalty=1.1, seed=0, gguf=False, owner_key=None,
                   conversation=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        sampling = sampling_from(lab, greedy, temperature, top_p, max_new_tokens, repetition_penalty, seed)
        plan = plan_turn(lab, conversation, owner, None, run_id, which, template, system_prompt, sampling, gguf)
        yield from answer_turn(lab, tab, owner, plan)

    sent = gr.on([tab.send.click, tab.message.submit], send, [tab.message, *settings, owner_key, tab.conversation],
                 streamed, api_name="chat_send", **one_at_a_time)
    sent.success(lambda: "", None, tab.message, api_visibility="private")  # the message is in the conversation
    tab.regenerate.click(regenerate, [*settings, owner_key, tab.conversation], streamed, api_name="chat_regenerate",
                         **one_at_a_time)

    def stop(owner_key=None, request: gr.Request = None):
        return stop_answer(tab, lab.owner(owner_key, request))

    tab.stop.click(stop, owner_key, tab.note, api_name="chat_stop", concurrency_limit=None)

    def mark(turn=0, better="trained", owner_key=None, conversation=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        conversation = mark_turn(lab, conversation, owner, turn, better)
        return _marked_views(lab, tab, conversation, owner)

    tab.mark.click(mark, [tab.turn, tab.better, owner_key, tab.conversation], _marked_outputs(tab),
                   api_name="chat_mark")

    def edit(turn=0, side="trained", answer="", owner_key=None, conversation=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        conversation = edit_turn(lab, conversation, owner, turn, side, answer)
        return _marked_views(lab, tab, conversation, owner)

    tab.save_edit.click(edit, [tab.turn, tab.side, tab.edited, owner_key, tab.conversation], _marked_outputs(tab),
                        api_name="chat_edit")

    def clear():
        return {**{column: [] for column in tab.columns.values()}, tab.conversation: None,
                tab.note: status_line(None, {}, "", "", None)}

    tab.clear.click(clear, None, [*tab.columns.values(), tab.note, tab.conversation], api_name="chat_clear")
    _wire_page(lab, tab, owner_key, shown, clear)


def _marked_outputs(tab: ChatTab) -> list:
    return [tab.columns["base"], tab.columns["trained"], tab.saved, tab.conversation]


def _marked_views(lab: Lab, tab: ChatTab, conversation: Conversation, owner: str) -> dict:
    return {tab.columns["base"]: chat_messages(conversation, "base"),
            tab.columns["trained"]: chat_messages(conversation, "trained"),
            tab.saved: saved_view(lab, owner), tab.conversation: conversation}


def _wire_page(lab: Lab, tab: ChatTab, owner_key, shown: gr.Tab, clear) -> None:
    """The page's own conveniences (private): the run list when the tab opens, a new
    conversation for another run, the GGUF column, an answer to edit filled in."""
    def opened(owner_key=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        return gr.update(choices=compare_tab.run_choices(lab, owner)), saved_view(lab, owner)

    shown.select(opened, owner_key, [tab.run, tab.saved], api_visibility="private")
    # Another run, or a column's own bin: a new conversation (a column never shows another than the rest).
    gr.on([tab.run.input, tab.which.input, *(column.clear for column in tab.columns.values())], clear, None,
          [*tab.columns.values(), tab.note, tab.conversation], api_visibility="private")
    tab.gguf.change(lambda on: gr.update(visible=on), tab.gguf, tab.columns["gguf"], api_visibility="private")

    def answer_to_edit(turn, side, conversation):
        try:
            return conversation.turn(turn).said(side) if conversation is not None else ""
        except ValueError:
            return ""

    gr.on([tab.turn.input, tab.side.input], answer_to_edit, [tab.turn, tab.side, tab.conversation], tab.edited,
          api_visibility="private")
