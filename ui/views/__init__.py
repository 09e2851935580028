"""How engine objects look on screen: pure functions from engine values to
widget values, no event handlers and no state.

    fields.py       widgets built from TrainConfig's field metadata, and back
    plots.py        plotly figures (a short run never looks empty)
    badges.py       failure-mode badges, validation perplexity, the memory line
    data_views.py   what the Data tab shows of a prepared dataset
    train_views.py  a run's snapshot as a status line, figures and the status JSON
    memory_view.py  the memory estimate for the current settings, term by term
    changes.py      a before -> after change with its 95% interval, as a cell and in words
    chat_views.py   a conversation's columns, who answers how, the person's saved chat data
    evidence_views.py  a run's standard benchmarks and judge, with their intervals
    runs_table.py   the Experiments table for many runs: filtered, newest first, paged, with each run's disk
"""
