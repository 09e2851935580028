"""`python -m finetune train|inspect|estimate|sweep|runs|compare-runs|export|push|chat`: the
same engine the app drives, headless.

    main.py      the parser (flags built from TrainConfig), train and inspect
    runs.py      sweep, runs, compare-runs
    estimate.py  estimate: the memory arithmetic for given settings
    share.py     export (a zip in any format) and push (to the Hugging Face Hub)
    chat.py      chat: talk with a finished run's model in the terminal, answers streamed
"""
