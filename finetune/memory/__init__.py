"""How much memory fine-tuning needs, and how much it took: the tutorial's
arithmetic term by term, and the measured peak to check it against.

    model_shape.py  the numbers of a Llama-like decoder, from a config, a spec or by hand
    estimate.py     weights, gradients, optimizer states, activations, loss: an Estimate with its arithmetic
    peak.py         the measured peak on CUDA, a Mac or the CPU
    tutorial.py     the tutorial's 7B question, answered
"""
