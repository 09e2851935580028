"""The fine-tuning lab's web app: `python app.py` serves it on http://127.0.0.1:7860.

A Hugging Face Space sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT and SPACE_ID;
the app then listens where the Space expects and uses its public settings.
"""

import os

from ui.app import build_app, launch_options

demo = build_app()

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), **launch_options())
