"""A finished run pushed to the Hugging Face Hub as a model repository, with
huggingface_hub (create_repo, upload_folder: one commit).

The upload is first laid out in the run folder (`<run>/hub/`: the model in the
chosen format, the model card, its loss curve, the run's files under
training/), so a push that cannot reach the Hub loses nothing: the folder is
ready to push later. Each way a push can fail (a repo name that is not
USER/NAME, no or a refused token, a run with no model, no network) is one line.
A repository this push created is deleted again if its upload fails, so no
half-written repo is left behind.
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..runs.folders import read_json_object
from ..runs.outputs import BEST_INFO, RunFolder
from ..train import objectives
from .card import hub_card, loss_curve_png
from .checkpoint import ExportError, has_final_model, model_folder, no_best_message
from .formats import adapter_folder, copy_files, format_files, gguf_files

UPLOAD_DIR = "hub"
# The run's record under training/; preference.json is a preference run's evidence, pair by pair.
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "comparison.json", "probe.json", "preference.json")


class PushError(ValueError):
    """A push that cannot go ahead or did not land; the message is one line for the user.
    `later`, when the upload was laid out but did not land: where it waits and how to push it."""

    def __init__(self, reason: str, later: str | None = None):
        super().__init__(f"{reason}; {later}" if later else reason)
        self.reason, self.later = reason, later


@dataclass(frozen=True)
class Pushed:
    url: str
    private: bool
    files: tuple[str, ...]


def check_repo_id(repo_id: str) -> str:
    """USER/NAME, by the Hub's own rules (huggingface_hub.utils.validate_repo_id)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id = (repo_id or "").strip()
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"the repository must be USER/NAME (your Hub user or organisation, a slash, a name); "
                        f"got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(f"{repo_id!r} is not a valid repository name: {str(err).splitlines()[0]}") from None
    return repo_id


def resolve_token(token: str | None) -> str:
    """The token typed in, else HF_TOKEN, else the cached `hf auth login`."""
    from huggingface_hub import get_token

    found = (token or "").strip() or os.environ.get("HF_TOKEN", "").strip() or get_token()
    if not found:
        raise PushError("no Hugging Face token: give one (a write token from huggingface.co/settings/tokens), "
                        "set HF_TOKEN, or run `hf auth login`")
    return found


def prepare_upload(folder: str | Path, adapter_only: bool = False, gguf: str | None = None,
                   license: str | None = None, repo_id: str | None = None, which: str = "final",
                   progress=lambda text: None) -> Path:
    """Lay out `<folder>/hub/`: what a push uploads (the final model or the best
    checkpoint, merged or its adapters alone, optionally a GGUF and Modelfile).
    Rebuilt whole each time, then renamed into place."""
    folder = Path(folder)
    _check_finished(folder, adapter_only, which)
    staging = folder / f".{UPLOAD_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with format_files(folder, which, "adapter" if adapter_only else "merged", progress) as weights:
            copy_files(weights, staging, link=True)
            files = []
            if gguf:  # from the merged weights already at hand; adapters alone need them merged first
                with (model_folder(folder, which, progress) if adapter_only else nullcontext(weights)) as model_dir:
                    files = gguf_files(folder, model_dir, staging, gguf, progress)
        (staging / BEST_INFO).unlink(missing_ok=True)  # summary.json under training/ says which checkpoint
        image = loss_curve_png(folder, staging / "loss_curve.png")
        card = hub_card(folder, adapter_only=adapter_only, license=license, gguf_files=files,
                        image=image.name if image else None, repo_id=repo_id, which=which)
        card.save(staging / "README.md")
        (staging / "training").mkdir()
        for name in RUN_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, staging / "training" / name)
        target = folder / UPLOAD_DIR
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)
        return target
    except ExportError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise PushError(str(err)) from None
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise PushError(f"could not lay out the upload in {folder.name}/{UPLOAD_DIR}: {err.strerror or err}") from None


def push(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False,
         adapter_only: bool = False, gguf: str | None = None, which: str = "final",
         progress=lambda text: None) -> Pushed:
    """Create (or reuse) USER/NAME on the Hub and upload the run in one commit."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    repo_id = check_repo_id(repo_id)
    token = resolve_token(token)
    _check_finished(folder, adapter_only, which)  # before the licence lookup, which may reach the network
    upload = prepare_upload(folder, adapter_only=adapter_only, gguf=gguf, license=_base_license(folder, token),
                            repo_id=repo_id, which=which, progress=progress)
    later = (f"the upload is ready in {folder.name}/{UPLOAD_DIR}; push it later with "
             f"`python -m finetune push {folder} --repo {repo_id}`")
    api = HfApi(token=token)
    created = False
    try:
        created = not api.repo_exists(repo_id)
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=upload, commit_message=commit_message(folder))
    except Exception as err:  # noqa: BLE001 -- every failure becomes one line, and the repo it made goes
        if created:
            _delete_quietly(api, repo_id)
        raise PushError(_explain(err, repo_id), later) from None
    files = tuple(sorted(str(p.relative_to(upload)) for p in upload.rglob("*") if p.is_file()))
    return Pushed(str(url), private, files)


def commit_message(folder: Path) -> str:
    """The Hub commit's title, naming how the run trained: 'Upload from the fine-tuning lab: DPO
    (preference pairs): beta 0.1, ...'; supervised runs keep the plain title."""
    config = read_json_object(folder / "config.json")
    if str(config.get("objective") or "sft") == "sft":
        return "Upload from the fine-tuning lab"
    return f"Upload from the fine-tuning lab: {objectives.describe(config)}"


def _check_finished(folder: Path, adapter_only: bool, which: str) -> None:
    """A run with nothing to push is refused before anything else happens."""
    if which == "final" and not adapter_only and not has_final_model(folder):
        raise PushError(f"{folder.name} has no trained model to push (the run did not finish)")
    try:
        if adapter_only:
            adapter_folder(folder, which)
        elif which == "best" and RunFolder(folder).best() is None:
            raise ExportError(no_best_message(folder))
    except ExportError as err:
        raise PushError(str(err)) from None


def _base_license(folder: Path, token: str) -> str | None:
    """The base model's licence for the card: the bundled default's is known;
    a hub base's is read from its model card (None when unknown or offline)."""
    import json

    from ..sources.files import looks_like_path

    try:
        spec = json.loads((folder / "config.json").read_text()).get("model", "")
    except (OSError, ValueError):
        return None
    if spec == "default":
        return "apache-2.0"  # SmolLM2-135M-Instruct's licence (its GGUF's general.license)
    if not spec or looks_like_path(spec):
        return None
    try:
        from huggingface_hub import model_info

        card = model_info(spec, token=token).card_data
        return getattr(card, "license", None)
    except Exception:  # noqa: BLE001 -- a licence we cannot read is left out, never a failed push
        return None


def _explain(err: Exception, repo_id: str) -> str:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return "the Hub is switched off here (HF_HUB_OFFLINE is set)"
    if isinstance(err, HfHubHTTPError):
        status = getattr(err.response, "status_code", None)
        if status == 401:
            return "the Hub refused the token (401): check it is a valid write token"
        if status == 403:
            return f"the token may not write to {repo_id} (403): use a write token for that user or organisation"
        return f"the Hub answered {status}: {str(err).splitlines()[0]}"
    text = f"{type(err).__name__}: {err}".splitlines()[0]
    return f"could not reach the Hugging Face Hub ({text})"


def _delete_quietly(api, repo_id: str) -> None:
    try:
        api.delete_repo(repo_id, missing_ok=True)
    except Exception:  # noqa: BLE001 -- the push's own error is the one to report
        pass


