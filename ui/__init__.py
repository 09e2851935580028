"""The Gradio app: one module per tab; widget values in, engine calls, engine results out."""
