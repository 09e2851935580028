"""A finished run leaving the lab: as a zip, on the Hugging Face Hub, or as a
GGUF file for llama.cpp and Ollama.

    checkpoint.py  which model leaves: the final one or the best checkpoint (LoRA adapters merged)
    continuing.py  a run's best or final model as the base of the next run (LoRA's best merged, kept)
    formats.py     the forms a model leaves in: merged, adapters alone, GGUF (with an Ollama Modelfile)
    bundle.py      a zip of the trained model with a model card and the run's files
    card.py        the Hub's model card: YAML metadata over the lab's card, the loss curve as an image
    hub.py         push to the Hub (create_repo, upload_folder), laid out in the run folder first
    gguf.py        one GGUF file (f16, bf16, q8_0, f32) in llama.cpp's layout for Llama-shaped models
    ollama.py      an Ollama Modelfile whose template is read off the tokenizer's chat template
    chat_models.py a finished run's base, trained and GGUF models for a chat, held while used, let go when idle
"""
