"""What a model answers and how good the answers are, before and after
training.

    generate.py      greedy answers for rendered prompts, batched
    metrics.py       the one list of metrics, the held-out comparison rows, their summary and changes, and
                     each category's one reading of them (the verdict every screen states)
    significance.py  is a change bigger than the noise: intervals and exact tests on paired scores
    probe.py         the general-capability probe: bundled questions and a reference text's perplexity
    preference.py    a preference run's evidence: how often unseen pairs' chosen reply is the likelier per token
    ask.py           one free-text question, rendered as training rendered its prompts
    benchmarks.py    standard benchmarks offline: bundled 100-item lm-eval tasks, scored item by item
    judge.py         a judge model's pairwise preference of the tuned over the base answers, in both orders
    sampling.py      how a chat answer is drawn (greedy, temperature, top p, seed, ...), each setting in words
    chat.py          a conversation rendered with the run's template, answered token by token (transformers, llama.cpp)
    conversation.py  base and trained model side by side, turn by turn; a marked turn as a pair, an edit as an example
"""
