"""Tasks and input pipelines: synthetic long-range tasks, prepared datasets (pinned archives, TFDS catalog).

task = rnnlab.tasks.get_task('copy', length=100)
it = task.iterator('train', batch_size=32, seed=0)     # also 'validation' (model selection) and 'test'
batch = next(it)          # {'inputs': int32 [B, T+20], 'lengths': [B], 'targets': [B, T+20], ...}
state = it.get_state()    # JSON-serialisable; it.set_state(state) resumes at the next batch
task.info                 # TaskInfo: kind, sizes, the trivial baseline (base.py documents every batch)
get_task('bible_en_es').baselines()   # every trivial predictor's score (translation, captions, CTC, video)
print(rnnlab.tasks.format_table(rnnlab.tasks.list_datasets()))   # what `rnnlab data list` shows
"""

from rnnlab.tasks.base import BatchIterator, DataError, Task, TaskInfo
from rnnlab.tasks.registry import (
    DatasetRow,
    format_table,
    get_task,
    list_datasets,
    list_tasks,
    prepare,
    register_task,
    task_description,
)

__all__ = [
    "BatchIterator",
    "DataError",
    "DatasetRow",
    "Task",
    "TaskInfo",
    "format_table",
    "get_task",
    "list_datasets",
    "list_tasks",
    "prepare",
    "register_task",
    "task_description",
]
