"""Running on a Hugging Face Space: where runs are kept, and the notice that
tells a visitor how to get a private copy. Standard library only: app.py reads
this before anything imports huggingface_hub (which reads HF_HOME on import)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

SPACE_STORAGE = Path("/data")  # where a Space mounts its persistent storage, when it has some


def persistent_storage(candidate: Path = SPACE_STORAGE, environ=os.environ) -> Path | None:
    """The Space's persistent storage: `candidate` on a Space (SPACE_ID set) when
    it is a folder we can write. Elsewhere None: a workstation's own /data is
    none of the app's business."""
    if not environ.get("SPACE_ID"):
        return None
    if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK):
        return candidate
    return None


def runs_root(default: Path, storage: Path | None) -> Path:
    """Runs survive a Space's restart only on its persistent storage."""
    return storage / "runs" if storage is not None else default


def storage_env(storage: Path | None, environ=os.environ) -> dict[str, str]:
    """Caches to move onto persistent storage, unless the operator set them: the
    Hub's downloads (the default model included) and the converted-model cache,
    so a restarted Space does not download again."""
    if storage is None:
        return {}
    wanted = {"HF_HOME": storage / ".huggingface", "FINETUNE_LAB_CACHE": storage / "finetune-lab"}
    return {name: str(path) for name, path in wanted.items() if not environ.get(name)}


def public_notice(space_id: str | None, max_new_tokens: int) -> str:
    """The line a public page shows: what is shared and capped, and (on a Space)
    how to get a private copy on a GPU."""
    text = (f"**A shared public lab.** Runs queue one at a time for everyone, each person sees only their own, "
            f"and answers to questions stop at {max_new_tokens} tokens.")
    if space_id:
        link = f"https://huggingface.co/spaces/{quote(space_id, safe='/')}?duplicate=true"
        text += (f" For your own copy on a private GPU, [duplicate this Space]({link}) and choose a GPU in its "
                 "settings.")
    return text
