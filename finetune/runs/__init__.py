"""One run's life: started, trained in a background thread, watched through
snapshots, and kept on disk as a record the app, the CLI and the API read.

    run.py                TrainingRun, the seam the app and CLI drive; the slot of the runs training now
    job.py                what the run hands its thread
    worker.py             what the thread does: load, answer before, train, answer after, save
    measures.py           what a run measures besides training: answers, probe, preference, benchmarks, judge, losses
    reuse.py              the "before" measurements computed once per model and question set, kept by key
    saving.py             how its models are written: final, adapters alone, best checkpoint
    validation_losses.py  each validation example's loss under the final model, to compare runs by example
    outputs.py            the files a run folder holds, written the same way by every caller
    status.py             a run's status, and whether the process holding it still lives
    folders.py            where runs and sweeps live under a root; their JSON files read and written safely
    records.py            run folders read back as RunRecords; owners
    portable.py           why a run folder can move: paths recorded relative to it, names without paths
    resume.py             what can be resumed, from which checkpoint, with which settings
    sweep_records.py      sweep folders read back
    disk.py               the disk runs use: sizes, deleting runs whole, retention and quota on a public server
    footprint.py          what a run will write to disk, estimated before it starts
"""
