"""Building what a run reads: the sample and replication corpora, out-of-domain text and the pretrained teachers
(SmolLM2, Gemma 3) in Hugging Face folders."""
