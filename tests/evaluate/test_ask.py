"""A free-text question is rendered as training rendered its prompts."""

import pytest

from finetune.evaluate.ask import ask, render_question
from finetune.evaluate.generate import generate


def test_free_text_prompt_uses_the_training_template(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = render_question(tokenizer, "What is the capital of France?", system_prompt="Be brief.")
    assert text.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert "Be brief." in text
    alpaca = render_question(tokenizer, "Say hi", template="alpaca")
    assert "### Instruction:\nSay hi" in alpaca and alpaca.endswith("### Response:\n")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # The answer is the model's greedy continuation of the question rendered as training renders prompts.
    expected = generate(model, tokenizer, [render_question(tokenizer, "Say hi")], max_new_tokens=4)[0]
    assert ask(model, tokenizer, "  Say hi ", max_new_tokens=4) == expected
    with pytest.raises(ValueError, match="type a question first"):
        ask(model, tokenizer, "   ", max_new_tokens=4)
