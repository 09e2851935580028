"""Where a run's inputs come from, read safely: every byte here may come from
a stranger (an upload, a hub id typed into a public Space).

    files.py      a dataset file or hub dataset as a Table of records; size caps, refusals as DataError
    models.py     a model spec (the bundled default, a local folder, a hub id) resolved and loaded
                  with trust_remote_code=False and safetensors only; refusals as ModelError
    hub_token.py  redact(): a hub token never reaches a message, log or file
"""
