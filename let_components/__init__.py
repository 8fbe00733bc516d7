"""let-titan: Late-to-Early Training (LET) as torchtitan components.

Importing the package registers the student TrainSpec ("let_llama") and the local-files datasets.
"""

from . import data, student

student.register()
data.register()
