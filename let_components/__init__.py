"""let-titan: Late-to-Early Training (LET) as torchtitan components.

Importing the package registers the student TrainSpecs (`let_llama`, `let_qwen3`, `let_deepseek_v3`) and the
datasets (the sample corpus, local files, The Pile).
"""

from . import data, student

student.register()
data.register()
