"""The Gradio app: widget values in, engine calls, engine results out.

    app.py     build_app(): the tabs in the order a user works, wired to one Lab
    boundary.py  what an endpoint accepts: each raw value checked, and a bad one named, before Gradio converts it
    main.py    the app's command line (`finetune-lab`, `python app.py`): flags, environment, launch
    lab.py     what one app instance knows between requests: the scheduler, uploads, owners
    limits.py  what one request may cost the server in public mode
    space.py   running on a Hugging Face Space (standard library only)
    views/     pure functions from engine objects to widget values
    tabs/      one module per tab: its widgets and their handlers

Lower parts never import higher ones: views and lab know no tab, tabs know no app
(tests/test_layout.py checks).
"""
