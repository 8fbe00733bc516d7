"""Turning finished runs into results: the run comparison, the benchmark, paired-by-seed statistics, evaluation and
the Hugging Face export, all reading run folders through run_logs."""
