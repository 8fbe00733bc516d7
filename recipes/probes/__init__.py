"""Measuring one thing about a student, a teacher or a run's cost: representation similarity, bits per byte,
initialisation, what the teacher knows, alignment and stop-rule cost, teacher backends, memory."""
