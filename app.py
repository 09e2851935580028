"""The fine-tuning lab's web app: `python app.py` serves it on http://127.0.0.1:7860."""

from ui.app import build_app, launch_options

demo = build_app()

if __name__ == "__main__":
    demo.launch(server_name="127.0.0.1", server_port=7860, **launch_options())
