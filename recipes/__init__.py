"""Runnable entry points and the tools around training, sorted by what a user does with them: train.py, assets/
(build data and teachers), probes/ (measure one thing), reports/ (results from finished runs), studies/ (the shell
scripts of the studies) and common.py (what they share). They import `let_components`; nothing in `let_components`
imports them."""
