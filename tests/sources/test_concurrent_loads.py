"""Two things load models at once on a workshop server: a training run starting
and a student's question on the Compare tab. Each must get a whole model."""

import threading

from finetune.sources import models


def test_models_loaded_in_several_threads_at_once_all_have_real_weights(tiny_model_dir):
    source = models.ModelSource("local", str(tiny_model_dir), "tiny")
    broken, errors = [], []

    def load_some():
        try:
            for _ in range(5):
                model, _ = models.load(source, progress=lambda *_: None)
                if any(p.is_meta for p in model.parameters()) or model.lm_head.weight.is_meta:
                    broken.append(model)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=load_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not broken  # without models.BUILD_LOCK, every one of them came back on meta
    model, _ = models.load(source)  # and the process is not left patched for later loads
    assert model.lm_head.weight is model.model.embed_tokens.weight and not model.lm_head.weight.is_meta
