"""Everything about vectors: the fixed reduction of model features (reduction.py), how a vector is stored
(codec.py), the planner (planner.py), the in-process index (local_index.py), the Milvus adapter
(milvus.py) and the one port the image service calls (manager.py)."""
