"""Runnable entry points and the tools behind them (benchmark, run comparison, memory estimate, evaluation,
HF export, data builders). They import `let_components`; nothing in `let_components` imports them."""
