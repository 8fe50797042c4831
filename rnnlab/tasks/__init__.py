"""Tasks and input pipelines: synthetic long-range tasks, offline and catalog TFDS datasets, resumable loaders.

task = rnnlab.tasks.get_task('copy', length=100)
it = task.iterator('train', batch_size=32, seed=0)
batch = next(it)          # {'inputs': int32 [B, T+20], 'lengths': [B], 'targets': [B, T+20], ...}
state = it.get_state()    # JSON-serialisable; it.set_state(state) resumes at the next batch
"""

from rnnlab.tasks.base import BatchIterator, Task, TaskInfo, get_task, list_tasks
from rnnlab.tasks.datasets import list_datasets, prepare

__all__ = ["BatchIterator", "Task", "TaskInfo", "get_task", "list_datasets", "list_tasks", "prepare"]
