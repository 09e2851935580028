"""The fine-tuning lab's web app: `python app.py` serves it on http://127.0.0.1:7860
(installed as a package, `finetune-lab` does the same).

    python app.py --host 0.0.0.0 --port 7860 --public    # a server for a class
    python app.py --share                                # a share link, from a notebook or Colab

The command line lives in ui/main.py (see there for the flags and the environment).
A Hugging Face Space runs `python app.py` with GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT and SPACE_ID set: the app listens where the Space expects, in
public mode, and keeps its runs on the Space's persistent storage (/data) when
it has some.
"""

from __future__ import annotations

# Standard library only: nothing here may import huggingface_hub before HF_HOME is set.
from ui.main import main, parse_args, server_settings  # noqa: F401  (parse_args, server_settings: for importers)


def __getattr__(name: str):
    """`app.demo`, built on first use with the environment's settings (for a
    notebook, or tools that look for a module-level demo); `python app.py` never
    builds it at import, so the flags above take effect first."""
    if name != "demo":
        raise AttributeError(name)
    from ui.app import build_app

    globals()["demo"] = built = build_app()
    return built


if __name__ == "__main__":
    main()
