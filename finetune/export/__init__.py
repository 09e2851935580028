"""A finished run leaving the lab.

    bundle.py      a zip of the trained model with a model card and the run's files
    checkpoint.py  which model leaves: the final one or the best checkpoint (LoRA adapters merged)
"""
