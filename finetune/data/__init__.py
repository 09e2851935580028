"""What a dataset's records mean and how the model sees them. Knows nothing
of training or runs: a run's settings come in as dataset.DataSettings.

    example.py   what a record becomes (Example: a conversation, a preference pair's other reply) and the readers' helpers
    pair_formats.py  preference data: prompt/chosen/rejected, whole conversations, sharegpt pairs, OpenAssistant trees, KTO's labels
    formats.py  detect a format and normalise every record to a conversation (Example)
    render.py   an Example as text and token ids, the loss on the assistant's tokens only
    dataset.py  from a source to what a run needs: the split, encodings, held-out prompts, a report
    collate.py  micro-batches packed into rows with a block-diagonal attention mask
    advice.py   what the examples say about whether fine-tuning on them will pay off
    text.py     when two answers are the same text (shared with the metrics)
    collected.py  a person's pairs and edited answers from the Chat tab, one JSONL file each, in the runs folder
"""
