"""Fine-tuning engine: data, models, training runs. Never imports gradio."""
